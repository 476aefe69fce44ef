"""KerasTuner searches for every app (resumable; chief/worker distribution by KerasTuner itself)."""
