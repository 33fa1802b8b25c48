from pathlib import Path

import pytest

from app.settings import Settings, SettingsError, usable_cores

TOKEN = "hf_settingsTestSecret123"


def test_defaults_match_the_documented_ones():
    settings = Settings.from_env({})
    assert settings == Settings(torch_threads=settings.torch_threads)
    assert (settings.mode, settings.model.device, settings.port) == ("auto", "cpu", 5001)
    assert settings.model.model_id == "NeoQuasar/Kronos-small"
    assert settings.model.tokenizer_id == "NeoQuasar/Kronos-Tokenizer-base"
    assert (settings.model.max_context, settings.model.clip) == (512, 5.0)
    assert settings.torch_threads == max(1, usable_cores() // settings.workers)


def test_admission_defaults_follow_cores_workers_and_torch_threads():
    cores = usable_cores()
    one_thread = Settings.from_env({"KRONOS_WORKERS": "1", "KRONOS_TORCH_THREADS": "1"})
    assert (one_thread.concurrent_forecasts, one_thread.max_inflight) == (cores, 2 * cores)
    wide = Settings.from_env({"KRONOS_WORKERS": "1", "KRONOS_TORCH_THREADS": str(cores + 1)})
    assert (wide.concurrent_forecasts, wide.max_inflight) == (1, 2)
    chosen = Settings.from_env(
        {
            "KRONOS_CONCURRENT_FORECASTS": "3",
            "KRONOS_MAX_INFLIGHT": "5",
            "KRONOS_QUEUE_TIMEOUT_S": "2.5",
            "KRONOS_REFUSAL_DELAY_MS": "0",
        }
    )
    assert (chosen.concurrent_forecasts, chosen.max_inflight, chosen.queue_timeout_s) == (3, 5, 2.5)
    assert chosen.refusal_delay_ms == 0


def test_values_are_read_and_normalised(tmp_path):
    env = {
        "KRONOS_MODE": "Simulated",
        "KRONOS_DEVICE": "CUDA:1",
        "KRONOS_MODEL_REVISION": "v1.0",
        "KRONOS_DATA_DIR": str(tmp_path),
        "KRONOS_ALLOW_SYNTHETIC_HISTORY": "yes",
        "KRONOS_WORKERS": "4",
        "KRONOS_LOG_LEVEL": "debug",
        "KRONOS_HUB_TIMEOUT_S": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.mode == "simulated"
    assert settings.model.device == "cuda:1"
    assert settings.model.model_revision == "v1.0"
    assert settings.forecast.data_dir == Path(tmp_path)
    assert settings.forecast.allow_synthetic_history is True
    assert settings.workers == 4
    assert settings.log_level == "DEBUG"
    assert settings.model.hub_timeout_s == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KRONOS_MODE", "fast"),
        ("KRONOS_DEVICE", "gpu"),
        ("KRONOS_DEVICE", "cuda:x"),
        ("KRONOS_MAX_CONTEXT", "many"),
        ("KRONOS_MAX_CONTEXT", "1"),
        ("KRONOS_CLIP", "-1"),
        ("KRONOS_CLIP", "nan"),
        ("KRONOS_PORT", "70000"),
        ("KRONOS_WORKERS", "0"),
        ("KRONOS_ALLOW_SYNTHETIC_HISTORY", "maybe"),
        ("KRONOS_DATA_DIR", "/no/such/folder"),
        ("KRONOS_LOG_FORMAT", "xml"),
        ("KRONOS_TIMEOUT", "30"),
        ("KRONOS_API_KEYS_FILE", "/no/such/keys"),
        ("KRONOS_HUB_TIMEOUT_S", "0"),
        ("KRONOS_CONCURRENT_FORECASTS", "0"),
        ("KRONOS_QUEUE_TIMEOUT_S", "0"),
        ("KRONOS_MAX_INFLIGHT", "0"),
        ("KRONOS_REFUSAL_DELAY_MS", "-1"),
        ("KRONOS_REFUSAL_DELAY_MS", "1001"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name) as caught:
        Settings.from_env({name: value})
    assert caught.value.variable == name


def test_the_default_sample_count_must_respect_its_limit():
    env = {"KRONOS_SAMPLE_COUNT": "100", "KRONOS_MAX_SAMPLE_COUNT": "64"}
    with pytest.raises(SettingsError, match="KRONOS_MAX_SAMPLE_COUNT") as caught:
        Settings.from_env(env)
    assert caught.value.variable == "KRONOS_SAMPLE_COUNT"
    assert (
        Settings.from_env({**env, "KRONOS_SAMPLE_COUNT": "64"}).forecast.default_sample_count == 64
    )


def test_secrets_stay_out_of_the_repr(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# comment\nfile-key-1\n\n")
    settings = Settings.from_env(
        {
            "HF_TOKEN": TOKEN,
            "KRONOS_API_KEYS": "env-key-1, env-key-2",
            "KRONOS_API_KEYS_FILE": str(keys_file),
        }
    )
    assert settings.model.hf_token == TOKEN
    assert settings.api_keys == ("env-key-1", "env-key-2", "file-key-1")
    for text in (repr(settings), str(settings)):
        assert TOKEN not in text and "key-1" not in text
