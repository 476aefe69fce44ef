"""What a TF Serving deployment reads besides the exports: saved_models/models.config."""

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from apps.cli import APPS

MODELS_CONFIG = Path(__file__).parents[2] / "saved_models" / "models.config"


def test_models_config_serves_every_app_from_the_mounted_folder():
    config = text_format.Parse(
        MODELS_CONFIG.read_text(), model_server_config_pb2.ModelServerConfig()
    )
    models = {c.name: c for c in config.model_config_list.config}
    assert sorted(models) == sorted(app.name for app in APPS)
    for name, model in models.items():
        assert model.base_path == f"/models/{name}" and model.model_platform == "tensorflow"
