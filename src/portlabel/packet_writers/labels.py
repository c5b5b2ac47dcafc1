"""Per-packet labels as output text: the ``--label`` fields of packet lines and the
comments of the labelled pcapng copy.

Each batch goes through one ``LabelPipeline`` (``feed_packets``): a flow's uid and
orientation are fixed when its first packet is seen, so every packet gets its label in
the same pass, no second read and no held packets. Label texts are built once per
distinct value (uids, service names) and gathered per packet.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import column_values
from portlabel.labelling.pipeline import LabelPipeline

TEXT = np.dtypes.StringDType()


def _texts(values: pa.Array, render=str, null: str = "") -> np.ndarray:
    """A string column as numpy text, each distinct value rendered once (nulls: ``null``)."""
    enc = values.dictionary_encode()
    names = [render(v) for v in enc.dictionary.to_pylist()] + [null]
    table = pa.Table.from_arrays([enc.indices], names=["i"])
    at = column_values(table, "i", fill=-1).astype(np.int64)
    return np.array(names, dtype=TEXT)[np.where(at < 0, len(names) - 1, at)]


class PacketLabeller:
    """Turns decoded batches into per-packet label fields, keeping the flows across batches."""

    def __init__(self, registry, config=None) -> None:
        self.pipeline = LabelPipeline(registry, config)

    def labels(self, batch) -> dict[str, pa.Array]:
        _, labels = self.pipeline.feed_packets(batch)
        return labels

    def json_fields(self, batch) -> np.ndarray:
        labels = self.labels(batch)
        uid = _texts(labels["uid"], json.dumps, "null")
        service = _texts(labels["iana.service"], json.dumps, "null")
        return np.strings.add(
            np.strings.add(',"uid":', uid), np.strings.add(',"iana.service":', service)
        )

    def text_fields(self, batch) -> np.ndarray:
        labels = self.labels(batch)
        uid = _texts(labels["uid"], null="-")
        service = _texts(labels["iana.service"], null="-")
        return np.strings.add(np.strings.add(" ", uid), np.strings.add(" ", service))

    def comments(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """``uid=C... iana=https/tcp 443 (assigned)`` per packet as (UTF-8 matrix, lengths);
        packets in no flow get none. The label part is rendered once per distinct label
        and the matrix assembled by gathers: nothing here runs per packet in Python."""
        from portlabel.flows.uid import UidSource
        from portlabel.labelling.flows import distinct_packet_labels

        _, flows = self.pipeline.feed_packet_flows(batch)
        where, columns = distinct_packet_labels(self.pipeline.registry, flows)
        tails = _label_texts(columns)
        tail_len = np.array([len(t) for t in tails] + [0], dtype=np.int64)
        tail = np.zeros((len(tails) + 1, max(int(tail_len.max()), 1)), dtype=np.uint8)
        for i, t in enumerate(tails):
            tail[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        # a uid's text once per flow of the batch, gathered per packet; a packet in no
        # flow (-1) gets the zero row appended last, never shown (its comment is empty)
        uid = UidSource.chars(np.vstack([flows.flow_uid, np.zeros((1, 3), np.uint32)]))
        uid = uid[flows.flow]
        uid_len = (uid != 0).sum(axis=1)
        row = np.where(where < 0, len(tails), where)
        n, head = len(row), len(_UID_PREFIX) + uid.shape[1]
        matrix = np.zeros((n, head + tail.shape[1]), dtype=np.uint8)
        matrix[:, : len(_UID_PREFIX)] = np.frombuffer(_UID_PREFIX, dtype=np.uint8)
        matrix[:, len(_UID_PREFIX) : head] = uid
        for size in np.unique(uid_len).tolist():  # uids are 17 or 18 characters
            rows = np.flatnonzero(uid_len == size)
            at = len(_UID_PREFIX) + size
            matrix[rows, at : at + tail.shape[1]] = tail[row[rows]]
        lengths = np.where(where < 0, 0, len(_UID_PREFIX) + uid_len + tail_len[row])
        return matrix, lengths


_UID_PREFIX = b"uid="


def _label_texts(columns: dict[str, pa.Array]) -> list[bytes]:
    """`` iana=https/tcp 443 (assigned)`` for each distinct label row, UTF-8."""
    out = []
    rows = zip(
        *(columns[name].to_pylist() for name in ("iana.service", "iana.transport", "iana.port",
                                                 "iana.status")),
        strict=True,
    )  # fmt: skip
    for service, transport, port, status in rows:
        where = "" if port is None else f"/{transport} {port}"
        out.append(f" iana={service or '-'}{where} ({status or '-'})".encode())
    return out
