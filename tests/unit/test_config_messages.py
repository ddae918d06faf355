"""What a person is told about a config mistake: the key, what to write instead, the file."""

from pathlib import Path

import pytest

from relay.errors import ConfigError
from relay.plugins import load_config, parse_config

TEST = "0f8f6c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, origin="relay.yaml")
    return str(caught.value)


def routes(when: str) -> str:
    sources = "sources: {eas: {secret: {env: X}}}\n"
    return sources + f"routes: [{{name: r, when: {when}, tests: [{TEST}]}}]\n"


def test_an_unknown_key_names_the_nearest_and_the_valid_ones():
    message = refused("sources: {eas: {secret: {env: X}}}\nroute: []\n")
    assert message.startswith(
        "relay.yaml: (top level): unknown key `route`: did you mean `routes`?"
    )
    assert "valid keys: revyl, sources, routes, dedup, secrets, verdicts" in message
    # a source type's own settings, validated by its own model
    message = refused("sources: {github: {secret: {env: X}, api: {tokn: {env: T}}}}\n")
    assert "sources.github.api: unknown key `tokn`: did you mean `token`?" in message
    # nothing close: the valid keys only
    message = refused("sources: {eas: {secret: {env: X}, zzz: 1}}\n")
    assert "sources.eas: unknown key `zzz` (valid keys: type, secret)" in message


def test_a_plain_string_secret_says_how_to_write_one_and_never_echoes_it():
    message = refused("sources: {eas: {secret: s3cr3t-value}}\n")
    assert message == (
        "relay.yaml: sources.eas.secret: a secret is never written in the config: write "
        "`{secret: NAME}` (Secret Manager) or `{env: NAME}` (an environment variable)"
    )
    message = refused("revyl: {token: rev_abc123}\nsources: {eas: {secret: {env: X}}}\n")
    assert "revyl.token: a secret is never written in the config" in message
    assert "rev_abc123" not in message


def test_a_mapping_given_as_something_else_says_so_without_a_class_name():
    message = refused(routes('"ios"'))
    assert message == (
        "relay.yaml: routes.0.when: expected a mapping (`key: value` lines or `{key: value}`), "
        "got a string"
    )


def test_a_yaml_error_names_the_file_line_and_column():
    message = refused("sources:\n  eas: {secret: {env: X}\n")
    assert message.startswith("relay.yaml:3:1: not valid YAML: ")
    assert "<unicode string>" not in message


@pytest.mark.parametrize("written", ["Android", "ANDROID", " android"])
def test_a_platform_is_read_case_insensitively(written):
    config = parse_config(routes(f'{{platform: "{written}"}}'))
    assert config.routes[0].when.platform == "android"


def test_a_platform_glob_must_match_a_platform():
    assert parse_config(routes('{platform: "i*"}')).routes[0].when.platform == "i*"
    message = refused(routes('{platform: "w*"}'))
    assert "routes.0.when.platform: 'w*' is not a platform (platforms: ios, android)" in message


def test_a_misspelled_platform_is_refused_with_a_hint():
    message = refused(routes("{platform: andriod}"))
    assert message == (
        "relay.yaml: routes.0.when.platform: 'andriod' is not a platform: did you mean "
        "'android'? (platforms: ios, android)"
    )


def test_a_missing_config_names_relay_config_when_it_named_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("RELAY_CONFIG", str(missing))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        f"cannot read config {missing} (named by RELAY_CONFIG): No such file or directory"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(Path(missing))
    assert "RELAY_CONFIG" not in str(caught.value)
