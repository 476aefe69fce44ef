# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written after a successful install; newer than setup.cfg and pyproject.toml means nothing to do.
INSTALLED := $(VENV)/.seqapps-installed
# Test files run in parallel, one worker per core, each file whole in one worker (its
# module-scoped trained models are built once): most of the suite is single-threaded Python
# (tracing, fixtures), so two workers on 2 cores halved it (14 min 28 s -> 7 min 10 s, measured).
PYTEST_ARGS ?= -m "not slow" -n auto --dist loadfile

.PHONY: demo demo-sentiment demo-tagging demo-translation demo-captioning test test-slow lint format install bench-tcn bench-recurrent bench-attention bench-sentiment bench-tagging bench-translation bench-captioning bench-tuning bench-serving

install: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	touch $@

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The long checks that `make test` leaves out (full training runs); run them before closing an issue.
test-slow: $(INSTALLED)
	$(BIN)/pytest -m slow

# Every app's short demo: train on the built-in data, evaluate, export for TF Serving (the newest
# version under saved_models/<app>) and ask the export a few questions.
demo: demo-sentiment demo-tagging demo-translation demo-captioning

DEMO_RUN ?= runs/demo-sentiment
demo-sentiment: $(INSTALLED)
	$(BIN)/seqapps train sentiment --out $(DEMO_RUN) --epochs 8 --ensemble 2 --overwrite
	$(BIN)/seqapps evaluate sentiment --model $(DEMO_RUN) --split test
	$(BIN)/seqapps export sentiment --model $(DEMO_RUN) --base saved_models
	$(BIN)/seqapps predict sentiment --model saved_models/sentiment \
		"The story was gripping and the cast was truly superb." \
		"The plot was not clever, and the ending felt dull." \
		"I saw it last weekend. The acting was weak, but the soundtrack was wonderful."

# Entity tags of the built-in sentences (BiLSTM-CRF), a few epochs.
DEMO_TAGGING_RUN ?= runs/demo-tagging
demo-tagging: $(INSTALLED)
	$(BIN)/seqapps train tagging --out $(DEMO_TAGGING_RUN) --epochs 5 --overwrite
	$(BIN)/seqapps evaluate tagging --model $(DEMO_TAGGING_RUN) --split test
	$(BIN)/seqapps export tagging --model $(DEMO_TAGGING_RUN) --base saved_models
	$(BIN)/seqapps predict tagging --model saved_models/tagging \
		"Maria Keller of Siemens flew to New Delhi on Monday." \
		"The report says that Greenpeace may visit Lisbon in May."

# English-German pairs of the built-in grammar: a smaller transformer than the default, a few epochs.
DEMO_TRANSLATION_RUN ?= runs/demo-translation
demo-translation: $(INSTALLED)
	$(BIN)/seqapps train translation --out $(DEMO_TRANSLATION_RUN) --epochs 3 --overwrite \
		--set model_dim=128 --set intermediate_dim=512 --set encoder_layers=2 \
		--set decoder_layers=2 --set learning_rate=0.002 --set warmup_steps=100
	$(BIN)/seqapps evaluate translation --model $(DEMO_TRANSLATION_RUN) --split test
	$(BIN)/seqapps export translation --model $(DEMO_TRANSLATION_RUN) --base saved_models
	$(BIN)/seqapps predict translation --model saved_models/translation \
		"The big dog sees the small cat." \
		"Today the happy teacher helps the children because they are tired."

# Pictures of coloured shapes (the built-in data) at their own 64 pixels, a narrower LSTM
# decoder than the default (128 units), a few epochs; then it captions two generated pictures.
DEMO_CAPTIONING_RUN ?= runs/demo-captioning
demo-captioning: $(INSTALLED)
	$(BIN)/seqapps train captioning --out $(DEMO_CAPTIONING_RUN) --epochs 3 --overwrite \
		--set image_size=64 --set units=128 --set embedding_dim=128 --set attention_dim=128
	$(BIN)/seqapps evaluate captioning --model $(DEMO_CAPTIONING_RUN) --split test
	$(BIN)/seqapps export captioning --model $(DEMO_CAPTIONING_RUN) --base saved_models
	$(BIN)/python -m apps.captioning.builtin_data --out $(DEMO_CAPTIONING_RUN)/pictures --count 2
	$(BIN)/seqapps predict captioning --model saved_models/captioning \
		--attention-plot $(DEMO_CAPTIONING_RUN)/attention.png $(DEMO_CAPTIONING_RUN)/pictures/*.png

# Benchmarks (bench/RESULTS.md holds their figures). keras-tcn is benchmarked, never a dependency:
# its wheel's metadata names tensorflow-macos, so it goes in without dependencies, beside the bench.
bench/.keras-tcn: | $(INSTALLED)
	$(BIN)/python -m pip install --quiet --no-deps --target $@ keras-tcn==3.5.7

bench-tcn: bench/.keras-tcn
	$(BIN)/python bench/bench_tcn.py throughput
	$(BIN)/python bench/bench_tcn.py adding

bench-recurrent: $(INSTALLED)
	$(BIN)/python bench/bench_recurrent.py

bench-attention: $(INSTALLED)
	$(BIN)/python bench/bench_attention.py

# Real data is read from a path, never copied: SST2=/path/to/sst2 make bench-sentiment
SST2 ?= ../shared/data/sst2
bench-sentiment: $(INSTALLED)
	$(BIN)/python bench/bench_sentiment.py --data $(SST2)

# Real data is read from its folders, never copied (about 1.5 hours, alone on the machine).
UD_EWT ?= ../shared/data/ud_en_ewt
UNER_EWT ?= ../shared/data/uner_en_ewt
bench-tagging: $(INSTALLED)
	$(BIN)/python bench/bench_tagging.py pos --data $(UD_EWT)
	$(BIN)/python bench/bench_tagging.py ner --data $(UNER_EWT)
	$(BIN)/python bench/bench_tagging.py scale

# Real data is read from its folder, never copied (alone on the machine: about 3 hours).
MULTI30K ?= ../shared/data/multi30k
bench-translation: $(INSTALLED)
	$(BIN)/python bench/bench_translation.py multi30k --data $(MULTI30K)
	$(BIN)/python bench/bench_translation.py speed --model runs/bench-translation/transformer \
		--data $(MULTI30K)

# Real data is read from its folder, never copied (alone on the machine: about 40 minutes).
FLICKR8K ?= ../shared/data/flickr8k_train_subset
bench-captioning: $(INSTALLED)
	$(BIN)/python bench/bench_captioning.py flickr8k --data $(FLICKR8K) --arch lstm transformer
	$(BIN)/python bench/bench_captioning.py blocking --data $(FLICKR8K) \
		--model runs/bench-captioning/lstm

# seqapps tune: resident memory over 20 trials, a 20-trial search on SST-2 (read from its folder,
# never copied) against the default configuration, and each app's small search on its built-in
# data (alone on the machine: about 1.5 hours).
bench-tuning: $(INSTALLED)
	$(BIN)/python bench/bench_tuning.py memory
	$(BIN)/python bench/bench_tuning.py sst2 --data $(SST2)
	$(BIN)/python bench/bench_tuning.py builtin

# seqapps serve under load (concurrency 1, 8, 32, with and without batching) against the SavedModel
# in-process, and the --float16 exports' drift; both export the demo runs (make demo first; about
# 10 minutes, alone on the machine).
bench-serving: $(INSTALLED)
	$(BIN)/python bench/bench_serving.py load
	$(BIN)/python bench/bench_serving.py float16
