"""The ``serve:`` block of channels.yaml and the serve secret."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from outagecomms import ConfigError
from outagecomms.config import load_config, parse_listen
from outagecomms.redact import redact
from outagecomms.secret import secret_path, serve_secret


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_serve_block_defaults(tmp_path: Path):
    serve = load_config(write(tmp_path, "channels: {}\n")).serve
    assert (serve.public_url, serve.listen, serve.history_days) == (None, "127.0.0.1:8080", 90)


def test_serve_block_read_and_overridden_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = write(
        tmp_path,
        "serve:\n  public_url: https://status.shop.example/\n  listen: 0.0.0.0:9000\n"
        "  history_days: 30\n",
    )
    serve = load_config(path).serve
    assert serve.public_url == "https://status.shop.example"  # no trailing slash
    assert (serve.listen, serve.history_days) == ("0.0.0.0:9000", 30)
    monkeypatch.setenv("OUTAGECOMMS_SERVE__HISTORY_DAYS", "7")
    monkeypatch.setenv("OUTAGECOMMS_SERVE__PUBLIC_URL", "https://other.example")
    serve = load_config(path).serve
    assert (serve.history_days, serve.public_url) == (7, "https://other.example")


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("serve: {public_url: status.shop.example}", "'serve.public_url' value error, 'status"),
        ("serve: {public_url: 'https://x.example/?a=1'}", "must not have a ?query"),
        ("serve: {listen: localhost}", "'serve.listen' value error, 'localhost' is not HOST:PORT"),
        ("serve: {listen: '127.0.0.1:70000'}", "the port must be between 0 and 65535"),
        ("serve: {history_days: -1}", "serve.history_days"),
        ("serve: {histroy_days: 3}", "'serve.histroy_days' is not a known key"),
    ],
)
def test_bad_serve_block_names_the_key_and_line(tmp_path: Path, yaml: str, message: str):
    with pytest.raises(ConfigError, match=r"channels.yaml, line 1: ") as caught:
        load_config(write(tmp_path, yaml + "\n"))
    assert message in str(caught.value)


def test_a_secret_written_in_channels_yaml_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "serve:\n  secret: hunter2hunter2hunter2\n"))
    assert "OUTAGECOMMS_SERVE__SECRET" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8443", ("::1", 8443)),
        ("status.internal:80", ("status.internal", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "8080", ":8080", "host:", "host:port", "a b:1", "[::1]"])
def test_parse_listen_refuses(text: str):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(text)


def test_require_public_url_says_what_to_add(tmp_path: Path):
    serve = load_config(write(tmp_path, "channels: {}\n")).serve
    with pytest.raises(ConfigError, match=r"serve\.public_url is not set but is needed for links"):
        serve.require_public_url("links in messages")


# --- the secret -----------------------------------------------------------------------


def test_secret_from_the_environment_wins_and_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OUTAGECOMMS_SERVE__SECRET", "s3cret-from-the-environment")
    config = load_config(write(tmp_path, "channels: {}\n"))
    assert serve_secret(config) == b"s3cret-from-the-environment"
    assert not secret_path(config).exists()
    assert "s3cret" not in redact("token s3cret-from-the-environment")


def test_secret_from_the_env_file(tmp_path: Path):
    (tmp_path / ".env").write_text("OUTAGECOMMS_SERVE__SECRET=from-the-dot-env-file-1234\n")
    config = load_config(write(tmp_path, "channels: {}\n"))
    assert serve_secret(config) == b"from-the-dot-env-file-1234"


def test_too_short_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OUTAGECOMMS_SERVE__SECRET", "short")
    with pytest.raises(ConfigError, match="too short"):
        serve_secret(load_config(write(tmp_path, "channels: {}\n")))


def test_secret_file_created_once_next_to_the_ledger_mode_0600(tmp_path: Path):
    config = load_config(write(tmp_path, "ledger: sqlite:///state/ledger.db\n"))
    path = secret_path(config)
    assert path == tmp_path / "state" / "secret"
    first = serve_secret(config)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert serve_secret(load_config(config.path)) == first  # every later command: the same
    assert first.decode() not in redact(f"x {first.decode()} y")
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary file left


def test_secret_file_without_a_sqlite_ledger_goes_in_dot_outagecomms(tmp_path: Path):
    config = load_config(write(tmp_path, "ledger: postgresql://db.example/outagecomms\n"))
    assert secret_path(config) == tmp_path / ".outagecomms" / "secret"


def test_empty_secret_file_is_an_error_saying_what_to_do(tmp_path: Path):
    config = load_config(write(tmp_path, "channels: {}\n"))
    secret_path(config).parent.mkdir()
    secret_path(config).write_text("\n")
    with pytest.raises(ConfigError, match="delete it to have a new one created"):
        serve_secret(config)


def test_a_folder_that_cannot_be_made_is_a_config_error(tmp_path: Path):
    (tmp_path / "state").write_text("a file where the folder should be")
    config = load_config(write(tmp_path, "ledger: sqlite:///state/ledger.db\n"))
    with pytest.raises(ConfigError, match=r"cannot read or create the serve secret .*SECRET"):
        serve_secret(config)


def _secret_in_a_process(path: str, queue: multiprocessing.Queue) -> None:
    queue.put(serve_secret(load_config(path)))


def test_two_processes_at_once_agree_on_one_secret(tmp_path: Path):
    path = write(tmp_path, "channels: {}\n")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_secret_in_a_process, args=(str(path), queue)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    results = {queue.get(timeout=60) for _ in processes}
    for process in processes:
        process.join(timeout=60)
    assert len(results) == 1
