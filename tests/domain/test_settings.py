"""Settings: Nova's options with each release's defaults, read from real nova.conf text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmes.domain.policy import SettingBelowMinimum
from lmes.domain.releases import Release, all_releases
from lmes.domain.settings import OPTIONS, Settings, SettingsError

DATA = Path(__file__).resolve().parents[1] / "data"
NEWTON = Release.parse("newton")
OCATA = Release.parse("ocata")
PIKE = Release.parse("pike")
ROCKY = Release.parse("rocky")
STEIN = Release.parse("stein")


def test_releases_parse_by_name_code_name_and_major() -> None:
    assert Release.parse("newton") == Release.parse("Newton") == Release.parse("14")
    assert Release.parse(14).name == "Newton"
    assert Release.parse("2024.1") == Release.parse("caracal") == Release.parse("29")
    assert Release.parse("essex").major == 5
    assert Release.parse("liberty").major == 12
    assert Release.parse("2023.1").major == 27
    assert Release.parse("2026.1").major == 33
    assert Release.newest() == Release.parse("2026.1")
    assert Release.parse("master") > Release.newest()
    assert NEWTON < OCATA
    assert [r.major for r in all_releases()] == list(range(5, 35))


@pytest.mark.parametrize("text", ["havanna", "", "4", "2023.3", "35"])
def test_unknown_releases_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="unknown Nova release .*series name"):
        Release.parse(text)


def test_newton_defaults() -> None:
    settings = Settings.defaults(NEWTON)
    assert settings.live_migration_downtime == 500
    assert settings.live_migration_downtime_steps == 10
    assert settings.live_migration_downtime_delay == 75
    assert settings.live_migration_completion_timeout == 800
    assert settings.live_migration_progress_timeout == 150
    assert settings.live_migration_permit_post_copy is False
    assert settings.live_migration_bandwidth == 0
    assert settings.max_concurrent_live_migrations == 1


def test_progress_timeout_and_vif_plug_defaults_follow_the_release() -> None:
    assert Settings.defaults(OCATA).live_migration_progress_timeout == 0
    assert Settings.defaults(ROCKY).live_migration_wait_for_vif_plug is False
    assert Settings.defaults(STEIN).live_migration_wait_for_vif_plug is True
    assert Settings.defaults(STEIN).live_migration_timeout_action == "abort"


def test_the_default_release_is_the_newest() -> None:
    assert Settings.defaults().release == Release.newest()
    assert Settings() == Settings.defaults()


@pytest.mark.parametrize("release", all_releases(), ids=str)
def test_every_release_has_valid_defaults_that_survive_json(release: Release) -> None:
    settings = Settings.defaults(release)
    assert Settings.from_dict(json.loads(json.dumps(settings.as_dict()))) == settings


def test_as_dict_names_every_option_as_nova_does() -> None:
    values = Settings.defaults(NEWTON).as_dict()
    assert values["release"] == "Newton"
    assert set(values) == {"release"} | {spec.name for spec in OPTIONS}


def test_from_dict_fills_missing_options_from_the_release_and_refuses_unknown_ones() -> None:
    settings = Settings.from_dict({"release": "newton", "live_migration_downtime": 400})
    assert settings.live_migration_downtime == 400
    assert settings.live_migration_progress_timeout == 150
    with pytest.raises(SettingsError, match="live_migration_dowtime"):
        Settings.from_dict({"live_migration_dowtime": 400})


def test_a_real_deployments_nova_conf() -> None:
    text = (DATA / "nova.conf").read_text(encoding="utf-8")
    settings = Settings.from_ini_text(text, Release.parse("2024.1"))
    assert settings.live_migration_downtime == 400  # the later of two lines wins
    assert settings.live_migration_downtime_steps == 10
    assert settings.live_migration_downtime_delay == 30
    assert settings.live_migration_completion_timeout == 1200
    assert settings.live_migration_timeout_action == "force_complete"
    assert settings.live_migration_permit_post_copy is True
    assert settings.live_migration_permit_auto_converge is True
    assert settings.live_migration_bandwidth == 0
    assert settings.max_concurrent_live_migrations == 2
    assert settings.migrate_max_retries == 3
    assert settings.live_migration_wait_for_vif_plug is False
    assert settings.vif_plugging_is_fatal is True
    assert settings.vif_plugging_timeout == 600
    # Removed in Stein: the leftover line is ignored, as Nova ignores it.
    assert settings.live_migration_progress_timeout == 0
    assert settings.release == Release.parse("2024.1")


def test_a_newton_nova_conf_ignores_options_newton_does_not_have() -> None:
    text = (DATA / "nova.conf.newton").read_text(encoding="utf-8")
    settings = Settings.from_ini_text(text, NEWTON)
    assert settings.live_migration_progress_timeout == 150
    assert settings.live_migration_timeout_action == "abort"
    assert settings == Settings.defaults(NEWTON)


def test_default_section_values_do_not_leak_into_other_sections() -> None:
    text = "[DEFAULT]\nlive_migration_downtime = 900\n[libvirt]\nvirt_type = kvm\n"
    assert Settings.from_ini_text(text).live_migration_downtime == 500


def test_repeated_sections_merge_and_quotes_are_dropped() -> None:
    text = (
        "[libvirt]\nlive_migration_downtime = '700'\n"
        '[libvirt]\nlive_migration_downtime_steps = "20"\n'
    )
    settings = Settings.from_ini_text(text)
    assert (settings.live_migration_downtime, settings.live_migration_downtime_steps) == (700, 20)


def test_an_empty_value_keeps_the_default() -> None:
    assert (
        Settings.from_ini_text("[libvirt]\nlive_migration_bandwidth =\n").live_migration_bandwidth
        == 0
    )


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True), ("True", True), ("yes", True), ("on", True), ("1", True),
        ("false", False), ("FALSE", False), ("no", False), ("off", False), ("0", False),
    ],
)  # fmt: skip
def test_booleans_are_read_as_oslo_reads_them(word: str, value: bool) -> None:
    text = f"[libvirt]\nlive_migration_permit_post_copy = {word}\n"
    assert Settings.from_ini_text(text).live_migration_permit_post_copy is value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[libvirt]\nlive_migration_permit_post_copy = maybe\n", "is not a boolean"),
        ("[libvirt]\nlive_migration_downtime = 1.5\n", r"\[libvirt\] live_migration_downtime"),
        ("[libvirt]\nlive_migration_timeout_action = pause\n", "is not one of abort"),
        ("live_migration_downtime = 400\n", "not a valid nova.conf"),
        ("[libvirt]\nthis line has no equals sign\n", "not a valid nova.conf"),
    ],
)
def test_bad_values_are_refused_with_their_section_and_option(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_ini_text(text)


def test_ocata_keeps_a_ramp_value_below_minimum_and_warns() -> None:
    text = (DATA / "nova.conf.below_minimum").read_text(encoding="utf-8")
    settings = Settings.from_ini_text(text, OCATA)
    assert settings.live_migration_downtime == 50
    assert settings.warnings() == [
        "[libvirt] live_migration_downtime = 50 is below the minimum 100; Nova raises it to 100",
        "[libvirt] live_migration_downtime_steps = 2 is below the minimum 3; Nova raises it to 3",
    ]


def test_pike_refuses_a_ramp_value_below_minimum() -> None:
    text = (DATA / "nova.conf.below_minimum").read_text(encoding="utf-8")
    with pytest.raises(SettingBelowMinimum, match="Pike .*refuses to start"):
        Settings.from_ini_text(text, PIKE)


def test_pike_refuses_other_options_below_their_minimum() -> None:
    with pytest.raises(SettingBelowMinimum, match="live_migration_completion_timeout = -1"):
        Settings.defaults(PIKE).with_overrides(live_migration_completion_timeout=-1)
    with pytest.raises(SettingBelowMinimum, match="migrate_max_retries = -2"):
        Settings.defaults(PIKE).with_overrides(migrate_max_retries=-2)


def test_pike_accepts_a_delay_of_3_that_ocata_raises_to_10() -> None:
    assert Settings.defaults(PIKE).with_overrides(live_migration_downtime_delay=3).warnings() == []
    assert Settings.defaults(OCATA).with_overrides(live_migration_downtime_delay=3).warnings()


def test_with_overrides_checks_names_types_and_the_release() -> None:
    settings = Settings.defaults(STEIN).with_overrides(live_migration_downtime=800)
    assert settings.live_migration_downtime == 800
    with pytest.raises(SettingsError, match="unknown Nova option"):
        settings.with_overrides(live_migration_downtime_ms=800)
    with pytest.raises(SettingsError, match="must be an integer"):
        settings.with_overrides(live_migration_downtime="800")
    with pytest.raises(SettingsError, match="must be one of abort, force_complete"):
        settings.with_overrides(live_migration_timeout_action="pause")
    with pytest.raises(SettingsError, match="does not exist in Nova Newton"):
        Settings.defaults(NEWTON).with_overrides(live_migration_timeout_action="abort")


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().live_migration_downtime = 1  # type: ignore[misc]
