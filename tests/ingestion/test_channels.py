"""Channel map: alias matching on $PnN/$PnS, ambiguity, user overrides, unit conversion."""

from __future__ import annotations

import numpy as np
import pytest

from ingestion.errors import IngestionError
from ingestion.fcs.channels import (
    DEFAULT_VOLUME_ALIASES,
    ChannelMap,
    hemoglobin_pg,
    normalize_name,
    select_channels,
)


def test_normalize_name_folds_case_and_whitespace() -> None:
    assert normalize_name("  rbc \t Volume ") == "rbc volume"
    assert normalize_name("HGB  Conc") == normalize_name("hgb conc")


@pytest.mark.parametrize("volume", ["V", "volume", "RBC Volume", "rbc-v", " RBC  volume "])
@pytest.mark.parametrize(
    ("hemoglobin", "kind"),
    [
        ("HC", "concentration_g_dl"),
        ("chc", "concentration_g_dl"),
        ("Hb conc", "concentration_g_dl"),
        ("HGB  CONC", "concentration_g_dl"),
        ("CH", "content_pg"),
        ("hb", "content_pg"),
        ("HGB", "content_pg"),
    ],
)
def test_default_aliases_match_pnn(volume: str, hemoglobin: str, kind: str) -> None:
    channels = [("FSC-A", None), (volume, None), ("SSC-A", None), (hemoglobin, None)]
    selection = select_channels(channels)
    assert (selection.volume, selection.hemoglobin, selection.hemoglobin_kind) == (1, 3, kind)


def test_aliases_match_pns_when_pnn_is_a_detector_name() -> None:
    channels = [("FL1-A", "Volume"), ("FL2-A", "Hb conc"), ("FL3-A", None)]
    selection = select_channels(channels)
    assert (selection.volume, selection.hemoglobin) == (0, 1)


def test_content_wins_over_concentration() -> None:
    selection = select_channels([("V", None), ("HC", None), ("CH", None)])
    assert (selection.hemoglobin, selection.hemoglobin_kind) == (2, "content_pg")


def test_pnn_and_pns_of_one_channel_both_matching_is_not_ambiguous() -> None:
    assert select_channels([("V", "Volume"), ("CH", "Hb")]).volume == 0


def test_two_volume_channels_are_ambiguous_and_both_are_named() -> None:
    with pytest.raises(IngestionError) as info:
        select_channels([("V", None), ("FL1", "RBC Volume"), ("HC", None)])
    err = info.value
    assert (err.kind, err.field) == ("fcs_ambiguous_channel", "volume")
    assert "$P1N 'V'" in err.message and "$P2N 'FL1' ($P2S 'RBC Volume')" in err.message


def test_duplicate_hemoglobin_names_are_ambiguous() -> None:
    with pytest.raises(IngestionError) as info:
        select_channels([("V", None), ("FL2", "HC"), ("FL3", "HC")])
    assert (info.value.kind, info.value.field) == (
        "fcs_ambiguous_channel",
        "hemoglobin_concentration",
    )


def test_missing_volume_lists_aliases_and_file_channels() -> None:
    with pytest.raises(IngestionError) as info:
        select_channels([("FSC-A", None), ("SSC-A", "Side scatter")])
    err = info.value
    assert (err.kind, err.field) == ("fcs_no_channel", "volume")
    assert err.message.startswith("no volume channel: looked for $PnN/$PnS in ['V', ")
    assert "file has channels ['FSC-A', 'SSC-A (Side scatter)']" in err.message


def test_missing_hemoglobin_names_both_roles() -> None:
    with pytest.raises(IngestionError) as info:
        select_channels([("V", None), ("SSC-A", None)])
    err = info.value
    assert (err.kind, err.field) == ("fcs_no_channel", "hemoglobin")
    assert "(content, pg)" in err.message and "(concentration, g/dL)" in err.message


def test_user_map_replaces_defaults_per_role() -> None:
    cmap = ChannelMap.from_dict({"volume": ["FSC-A"], "hemoglobin_content": "SSC-A"})
    assert cmap.volume == ("FSC-A",)
    assert cmap.hemoglobin_content == ("SSC-A",)
    assert cmap.hemoglobin_concentration == ChannelMap().hemoglobin_concentration
    # "V" is no longer a volume alias, so it cannot make the selection ambiguous.
    selection = select_channels([("V", None), ("FSC-A", None), ("SSC-A", None)], cmap)
    assert (selection.volume, selection.hemoglobin) == (1, 2)


def test_from_json_round_trips_through_to_dict() -> None:
    cmap = ChannelMap.from_json('{"volume": ["Vol (fL)"], "hemoglobin_concentration": ["MCHC"]}')
    assert cmap.volume == ("Vol (fL)",)
    assert ChannelMap.from_dict(cmap.to_dict()) == cmap


def test_constructor_accepts_lists() -> None:
    cmap = ChannelMap(volume=["a", "b"])  # type: ignore[arg-type]  # lists are accepted
    assert cmap.volume == ("a", "b")
    assert ChannelMap().volume == DEFAULT_VOLUME_ALIASES


@pytest.mark.parametrize(
    ("config", "field", "fragment"),
    [
        ({"volumes": ["V"]}, "volumes", "unknown key(s) ['volumes']"),
        ({"volume": []}, "volume", "volume has no aliases"),
        ({"volume": ["V", ""]}, "volume", "non-empty string"),
        ({"volume": [3]}, "volume", "non-empty string"),
        ({"volume": 3}, "volume", "expected a list of channel names"),
        (
            {"hemoglobin_content": [], "hemoglobin_concentration": []},
            "hemoglobin_content",
            "both empty",
        ),
        ({"volume": ["X"], "hemoglobin_content": ["x "]}, "hemoglobin_content", "both volume"),
    ],
)
def test_bad_user_maps_are_rejected(config: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(IngestionError) as info:
        ChannelMap.from_dict(config)
    assert (info.value.kind, info.value.field) == ("channel_map", field)
    assert fragment in info.value.message


def test_bad_json_is_an_ingestion_error() -> None:
    with pytest.raises(IngestionError, match="not valid JSON"):
        ChannelMap.from_json("{volume: V}")
    with pytest.raises(IngestionError, match="expected an object"):
        ChannelMap.from_json('["V"]')


def test_one_channel_for_both_roles_is_rejected() -> None:
    cmap = ChannelMap(volume=("FSC-A",), hemoglobin_content=("Side",))
    with pytest.raises(IngestionError) as info:
        select_channels([("FSC-A", "Side")], cmap)
    assert info.value.kind == "fcs_ambiguous_channel"


def test_concentration_is_converted_to_pg() -> None:
    volume = np.array([90.0, 80.0, 100.0])
    concentration = np.array([33.0, 30.0, 35.5])
    # 90 fL × 33 g/dL = 90e-15 L × 330 g/L = 29.7e-12 g = 29.7 pg
    np.testing.assert_allclose(
        hemoglobin_pg(volume, concentration, "concentration_g_dl"), [29.7, 24.0, 35.5]
    )
    np.testing.assert_array_equal(hemoglobin_pg(volume, concentration, "content_pg"), concentration)
