"""Which FCS channels hold per-cell volume and hemoglobin, and how to turn them into fL and pg.

Cytometers name channels freely ("V", "RBC Volume", "HC", "Hb conc"), so the reader looks them
up through a `ChannelMap`: alias lists per role, matched against each channel's `$PnN` and
`$PnS` after case-folding and collapsing whitespace. Defaults cover the common RBC names; users
override a role by passing their own list (from a dict or JSON), which replaces that role's
defaults so that a custom mapping never collides with a default alias.

Roles:
  volume                    per-cell volume in fL (required)
  hemoglobin_content        per-cell hemoglobin in pg, used as is
  hemoglobin_concentration  per-cell hemoglobin concentration in g/dL; pg = fL × g/dL / 100

When a file has both a content and a concentration channel, content wins: it is what the cell
set stores, and deriving it again would only add the volume channel's noise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

from ingestion.errors import IngestionError

DEFAULT_VOLUME_ALIASES: tuple[str, ...] = (
    "V",
    "Vol",
    "Volume",
    "Cell Volume",
    "RBC Volume",
    "RBC-V",
    "RBC V",
    "RBC_V",
    # Some exporters label the per-cell volume channel with the index it is averaged into.
    "MCV",
)
DEFAULT_HEMOGLOBIN_CONCENTRATION_ALIASES: tuple[str, ...] = (
    "HC",
    "CHC",
    "Hb conc",
    "HGB conc",
    "Hb concentration",
    "Hemoglobin concentration",
    "RBC-HC",
)
DEFAULT_HEMOGLOBIN_CONTENT_ALIASES: tuple[str, ...] = (
    "CH",
    "Hb",
    "HGB",
    "Hb content",
    "HGB content",
    "Hemoglobin",
    "Hemoglobin content",
    "RBC-CH",
)

HemoglobinKind = Literal["content_pg", "concentration_g_dl"]
ROLE_NAMES: tuple[str, ...] = ("volume", "hemoglobin_content", "hemoglobin_concentration")


def normalize_name(name: str) -> str:
    """Case-fold and collapse whitespace, so " rbc  Volume" matches "RBC Volume"."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class ChannelMap:
    """Alias lists per role. Lists given here replace the defaults for that role only."""

    volume: tuple[str, ...] = DEFAULT_VOLUME_ALIASES
    hemoglobin_content: tuple[str, ...] = DEFAULT_HEMOGLOBIN_CONTENT_ALIASES
    hemoglobin_concentration: tuple[str, ...] = DEFAULT_HEMOGLOBIN_CONCENTRATION_ALIASES

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for role in ROLE_NAMES:
            aliases = _as_alias_tuple(role, getattr(self, role))
            object.__setattr__(self, role, aliases)
            for alias in aliases:
                key = normalize_name(alias)
                other = seen.setdefault(key, role)
                if other != role:
                    raise IngestionError(
                        f"channel map: alias {alias!r} is listed for both {other} and {role}: "
                        "each channel name may map to one role only",
                        kind="channel_map",
                        field=role,
                    )
        if not self.volume:
            raise IngestionError(
                "channel map: volume has no aliases: at least one channel name is required",
                kind="channel_map",
                field="volume",
            )
        if not self.hemoglobin_content and not self.hemoglobin_concentration:
            raise IngestionError(
                "channel map: hemoglobin_content and hemoglobin_concentration are both empty: "
                "at least one of them needs a channel name",
                kind="channel_map",
                field="hemoglobin_content",
            )

    @classmethod
    def from_dict(cls, config: Mapping[str, object]) -> ChannelMap:
        """Build from user config, e.g. `{"volume": ["FSC-A"], "hemoglobin_content": "SSC-A"}`.

        Roles left out keep their defaults; unknown keys are an error so typos do not silently
        fall back to the defaults.
        """
        if not isinstance(config, Mapping):
            raise IngestionError(
                f"channel map: expected an object mapping roles to alias lists, "
                f"got {type(config).__name__}",
                kind="channel_map",
            )
        unknown = sorted(str(k) for k in config if k not in ROLE_NAMES)
        if unknown:
            raise IngestionError(
                f"channel map: unknown key(s) {unknown}: expected some of {list(ROLE_NAMES)}",
                kind="channel_map",
                field=unknown[0],
            )
        return cls(**{role: _as_alias_tuple(role, value) for role, value in config.items()})

    @classmethod
    def from_json(cls, text: str | bytes) -> ChannelMap:
        """Build from a JSON object with the same shape as `from_dict` takes."""
        try:
            config = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestionError(
                f"channel map: not valid JSON ({exc})", kind="channel_map"
            ) from None
        return cls.from_dict(config)

    def to_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ChannelSelection:
    """The channels `select_channels` picked, as 0-based column indices into the data."""

    volume: int
    hemoglobin: int
    hemoglobin_kind: HemoglobinKind


def select_channels(
    channels: Sequence[tuple[str, str | None]], channel_map: ChannelMap | None = None
) -> ChannelSelection:
    """Pick the volume and hemoglobin columns from `($PnN, $PnS)` pairs, in file order.

    Raises IngestionError `fcs_no_channel` when a role finds nothing and
    `fcs_ambiguous_channel` when it finds more than one channel, listing what the file has.
    """
    cmap = channel_map or ChannelMap()
    volume = _match_role(channels, "volume", cmap.volume)
    content = _match_role(channels, "hemoglobin_content", cmap.hemoglobin_content)
    concentration = _match_role(channels, "hemoglobin_concentration", cmap.hemoglobin_concentration)
    if volume is None:
        raise IngestionError(
            f"no volume channel: looked for $PnN/$PnS in {list(cmap.volume)}; "
            f"file has channels {_labels(channels)}",
            kind="fcs_no_channel",
            field="volume",
        )
    if content is not None:
        hemoglobin, kind = content, "content_pg"
    elif concentration is not None:
        hemoglobin, kind = concentration, "concentration_g_dl"
    else:
        raise IngestionError(
            "no hemoglobin channel: looked for $PnN/$PnS in "
            f"{list(cmap.hemoglobin_content)} (content, pg) and "
            f"{list(cmap.hemoglobin_concentration)} (concentration, g/dL); "
            f"file has channels {_labels(channels)}",
            kind="fcs_no_channel",
            field="hemoglobin",
        )
    if hemoglobin == volume:
        raise IngestionError(
            f"channel {_label(volume, channels[volume])} matches both volume and hemoglobin: "
            "point the channel map at two different channels",
            kind="fcs_ambiguous_channel",
            field="hemoglobin",
        )
    return ChannelSelection(volume=volume, hemoglobin=hemoglobin, hemoglobin_kind=kind)


def hemoglobin_pg(
    volume_fl: np.ndarray, hemoglobin: np.ndarray, kind: HemoglobinKind
) -> np.ndarray:
    """Per-cell hemoglobin in pg: content as is, concentration as fL × g/dL / 100.

    (1 fL × 1 g/dL = 1e-15 L × 10 g/L = 1e-14 g = 0.01 pg.)
    """
    values = np.asarray(hemoglobin, dtype=np.float64)
    if kind == "content_pg":
        return values
    # Garbage in (e.g. a misread byte order) may overflow to inf; CellSet rejects that cleanly.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(volume_fl, dtype=np.float64) * values / 100.0


def _match_role(
    channels: Sequence[tuple[str, str | None]], role: str, aliases: Iterable[str]
) -> int | None:
    wanted = {normalize_name(a) for a in aliases}
    hits = [
        i
        for i, (pnn, pns) in enumerate(channels)
        if normalize_name(pnn) in wanted or (pns is not None and normalize_name(pns) in wanted)
    ]
    if len(hits) > 1:
        listed = ", ".join(_label(i, channels[i]) for i in hits)
        raise IngestionError(
            f"{len(hits)} channels match {role}: {listed}; "
            f"pass a channel map whose {role} list names only the one to use",
            kind="fcs_ambiguous_channel",
            field=role,
        )
    return hits[0] if hits else None


def _label(index: int, channel: tuple[str, str | None]) -> str:
    pnn, pns = channel
    n = index + 1
    text = f"$P{n}N {pnn!r}"
    if pns and pns != pnn:
        text += f" ($P{n}S {pns!r})"
    return text


def _labels(channels: Sequence[tuple[str, str | None]]) -> list[str]:
    return [pnn if not pns or pns == pnn else f"{pnn} ({pns})" for pnn, pns in channels]


def _as_alias_tuple(role: str, value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise IngestionError(
            f"channel map: {role} = {value!r}: expected a list of channel names",
            kind="channel_map",
            field=role,
        )
    aliases: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise IngestionError(
                f"channel map: {role} contains {item!r}: every alias must be a non-empty string",
                kind="channel_map",
                field=role,
            )
        aliases.append(item)
    return tuple(aliases)
