"""``portlabel enrich``: append the ``iana.*`` columns to existing Zeek logs.

Modules: ``transport`` (which IP protocol a record's port belongs to, as data),
``render`` (the appended text, rendered once per protocol/port), ``splice`` (numpy byte
surgery on blocks of lines), ``zeek_tsv`` / ``zeek_json`` (the two log formats,
sans-IO), ``reader`` (a plain TSV reader), ``api`` (files, stdin, gzip, blocks; output
through ``portlabel.atomicfile``), ``frame`` (pandas / pyarrow tables).
"""

from __future__ import annotations

from portlabel.enrich.api import enrich_log, enrich_stream
from portlabel.enrich.frame import add_iana_columns
from portlabel.enrich.report import EnrichStats

__all__ = ["EnrichStats", "add_iana_columns", "enrich_log", "enrich_stream"]
