"""Map a lab export's header onto the fields a `CellSet` needs, units included.

Lab exports name the same quantity many ways (`volume_fl`, `Volume (fL)`, `V [µm³]`), so the
header is matched case-insensitively against alias lists, and a unit written as a suffix
(`_fl`, ` (fL)`, ` [pg]`) is parsed and turned into a factor. Anything ambiguous (two columns
for one field, a unit we do not know) is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from ingestion.errors import IngestionError

# field -> {unit: factor to the canonical unit}; the first unit is the default. An empty
# mapping means the field takes no unit (ids, sex, dates).
UNITS: Mapping[str, Mapping[str, float]] = {
    "patient_id": {},
    "sample_id": {},
    "volume_fl": {"fl": 1.0, "um3": 1.0, "um^3": 1.0},
    "hemoglobin_pg": {"pg": 1.0},
    # Cell hemoglobin concentration, converted to pg with the cell's volume (see below).
    "hemoglobin_g_dl": {"g/dl": 1.0, "g/l": 0.1},
    "measured_hematocrit_pct": {"%": 1.0, "pct": 1.0, "percent": 1.0, "l/l": 100.0},
    "rbc_count_e12_per_l": {"e12/l": 1.0, "10^12/l": 1.0, "x10^12/l": 1.0, "t/l": 1.0},
    "collected_at": {},
    "sex": {},
    "age_years": {"years": 1.0, "year": 1.0, "y": 1.0, "yr": 1.0},
}
REQUIRED = ("patient_id", "sample_id", "volume_fl")
LAB_FIELDS = ("measured_hematocrit_pct", "rbc_count_e12_per_l", "collected_at", "sex", "age_years")

_BRACKETED = re.compile(r"^(?P<base>.*?)\s*[(\[]\s*(?P<unit>[^)\]]*?)\s*[)\]]$")


@dataclass(frozen=True)
class ColumnMap:
    """Accepted header names per field, matched case-insensitively, unit suffix allowed.

    `hemoglobin_concentration` is the fallback when no per-cell hemoglobin mass column exists:
    pg = volume (fL) × concentration (g/dL) / 100. Replace a tuple to change what is accepted,
    or use `with_aliases` to add names in front of the defaults.
    """

    patient_id: tuple[str, ...] = ("patient_id", "patient", "pid", "patient_no")
    sample_id: tuple[str, ...] = ("sample_id", "sample", "sid", "specimen_id")
    volume: tuple[str, ...] = ("volume_fl", "volume", "v", "rbc_volume", "mcv_cell")
    hemoglobin: tuple[str, ...] = ("hemoglobin_pg", "hemoglobin", "hb", "ch", "hgb_pg")
    hemoglobin_concentration: tuple[str, ...] = ("hc_g_dl", "chc", "hb_conc_g_dl")
    measured_hematocrit_pct: tuple[str, ...] = ("measured_hematocrit_pct", "hct", "hematocrit")
    rbc_count_e12_per_l: tuple[str, ...] = ("rbc_count_e12_per_l", "rbc", "rbc_count")
    collected_at: tuple[str, ...] = ("collected_at", "collection_time", "collected")
    sex: tuple[str, ...] = ("sex", "gender")
    age_years: tuple[str, ...] = ("age_years", "age")

    def with_aliases(self, **extra: Sequence[str]) -> ColumnMap:
        """A copy with `extra` names tried before the existing ones, e.g. `volume=["VOL"]`."""
        unknown = set(extra) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"ColumnMap has no field(s) {sorted(unknown)}")
        return replace(self, **{k: (*v, *getattr(self, k)) for k, v in extra.items()})

    def aliases(self, field: str) -> tuple[str, ...]:
        """Aliases for a canonical field name (`volume_fl` -> `self.volume`)."""
        return getattr(self, _ATTRIBUTE.get(field, field))


_ATTRIBUTE = {
    "volume_fl": "volume",
    "hemoglobin_pg": "hemoglobin",
    "hemoglobin_g_dl": "hemoglobin_concentration",
}


@dataclass(frozen=True)
class Column:
    """One header cell mapped to a field: its position, text as written and unit factor."""

    field: str
    index: int
    header: str
    unit: str | None
    factor: float


@dataclass(frozen=True)
class Layout:
    """Which column feeds which field. `hemoglobin` is either `hemoglobin_pg` or `_g_dl`."""

    patient_id: Column
    sample_id: Column
    volume: Column
    hemoglobin: Column
    lab: tuple[Column, ...]

    @property
    def columns(self) -> tuple[Column, ...]:
        return (self.patient_id, self.sample_id, self.volume, self.hemoglobin, *self.lab)

    @property
    def hemoglobin_from_concentration(self) -> bool:
        return self.hemoglobin.field == "hemoglobin_g_dl"


def resolve(header: Sequence[str], columns: ColumnMap | None = None) -> Layout:
    """Find each field's column in `header`; raise `IngestionError(kind="table_column")`.

    Columns that match no field are ignored (exports carry scatter, flags, cell indices...).
    """
    columns = columns or ColumnMap()
    found: dict[str, Column] = {}
    claimed: dict[int, str] = {}
    for field, units in UNITS.items():
        for index, text in enumerate(header):
            column = _match(field, index, text, columns.aliases(field), units)
            if column is None:
                continue
            if field in found:
                raise IngestionError(
                    f"columns {found[field].header!r} and {text!r} both name {field}: "
                    "keep one, or narrow the ColumnMap aliases",
                    kind="table_column",
                    field=field,
                )
            if index in claimed:
                raise IngestionError(
                    f"column {text!r} matches both {claimed[index]} and {field}: "
                    "make the ColumnMap aliases distinct",
                    kind="table_column",
                    field=text,
                )
            found[field] = column
            claimed[index] = field
    for field in REQUIRED:
        if field not in found:
            raise _missing(field, header, columns)
    # A per-cell mass is the measured quantity; a concentration is only used without one.
    hemoglobin = found.get("hemoglobin_pg") or found.get("hemoglobin_g_dl")
    if hemoglobin is None:
        raise _missing("hemoglobin_pg", header, columns)
    return Layout(
        patient_id=found["patient_id"],
        sample_id=found["sample_id"],
        volume=found["volume_fl"],
        hemoglobin=hemoglobin,
        lab=tuple(found[f] for f in LAB_FIELDS if f in found),
    )


def split_unit(text: str, units: Mapping[str, float]) -> tuple[str, str | None]:
    """`'Volume (fL)'` -> `('volume', 'fl')`; `'hc_g_dl'` -> `('hc', 'g/dl')`; no unit -> None.

    A bracketed suffix is always taken as a unit (so an unknown one can be reported); a bare
    `_unit` / ` unit` suffix only when it is one of `units`, so `rbc_volume` stays whole.
    """
    name = _normalise(text)
    bracketed = _BRACKETED.match(name)
    if bracketed and bracketed["base"]:
        return _collapse(bracketed["base"]), _unit_key(bracketed["unit"])
    for unit in sorted(units, key=len, reverse=True):
        for spelling in {unit, unit.replace("/", "_per_"), unit.replace("/", "_")}:
            for sep in ("_", " "):
                suffix = sep + spelling
                if name.endswith(suffix) and len(name) > len(suffix):
                    return _collapse(name[: -len(suffix)]), unit
    return _collapse(name), None


def _match(
    field: str, index: int, text: str, aliases: Sequence[str], units: Mapping[str, float]
) -> Column | None:
    base, unit = split_unit(text, units)
    for alias in aliases:
        alias_base, alias_unit = split_unit(alias, units)
        if base != alias_base:
            continue
        chosen = unit or alias_unit or next(iter(units), None)
        if chosen is not None and chosen not in units:
            raise IngestionError(
                f"column {text!r}: unit {chosen!r} is not understood for {field}: "
                f"expected one of {', '.join(units)}",
                kind="table_unit",
                field=text,
            )
        if chosen is None and unit is not None:
            # A unit on a field without units (e.g. `sex (m/f)`): not this field after all.
            return None
        return Column(field, index, text, chosen, units[chosen] if chosen else 1.0)
    return None


def _missing(field: str, header: Sequence[str], columns: ColumnMap) -> IngestionError:
    expected = ", ".join(columns.aliases(field))
    if field == "hemoglobin_pg":
        expected += " (or a concentration column: "
        expected += ", ".join(columns.aliases("hemoglobin_g_dl")) + ")"
    shown = ", ".join(repr(h) for h in header[:20]) + (", ..." if len(header) > 20 else "")
    return IngestionError(
        f"no column for {field}: expected one of {expected} (any case, optional unit suffix "
        f"such as ' (fL)' or '_pg'); the header has {shown or 'no columns'}",
        kind="table_column",
        field=field,
    )


def _normalise(text: str) -> str:
    text = text.strip().lower().replace("µ", "u").replace("μ", "u").replace("³", "3")
    return re.sub(r"\s+", " ", text)


def _collapse(base: str) -> str:
    """`'patient id'`, `'patient-id'` and `'patient_id'` compare equal."""
    return re.sub(r"[\s\-.]+", "_", base.strip()).strip("_")


def _unit_key(unit: str) -> str:
    unit = re.sub(r"\s+", "", unit)
    return unit.replace("_per_", "/").replace("_", "/")
