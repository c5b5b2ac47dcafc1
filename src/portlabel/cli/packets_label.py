"""The labelling half of ``portlabel packets``: ``--label`` fields and the ``-o`` pcapng copy.

Imported only when asked for (it pulls in numpy, pyarrow and the registry). Each batch
goes through one ``LabelPipeline`` (``feed_packets``): a flow's uid and orientation are
fixed when its first packet is seen, so every packet gets its label in the same pass, no
second read and no held packets. Label texts are built once per distinct value (uids,
service names) and gathered per packet.

The pcapng copy needs each packet's original bytes, so it reads files with the native
reader (``RawBatch``) and decodes them itself; files that cannot be read are reported and
skipped like everywhere else, and the output is written atomically.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from portlabel.cli.label import _registry
from portlabel.errors import CaptureError, InputError, UsageError
from portlabel.label_flows import column_values
from portlabel.pipeline import LabelPipeline

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

    def __init__(self, args) -> None:
        from portlabel.label_api import flow_config

        options = {} if args.uid_seed is None else {"uid_seed": args.uid_seed}
        self.pipeline = LabelPipeline(_registry(args), flow_config(**options))

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
        from portlabel.label_flows import distinct_packet_labels

        _, flows = self.pipeline.feed_packet_flows(batch)
        where, columns = distinct_packet_labels(self.pipeline.registry, flows)
        tails = _label_texts(columns)
        tail_len = np.array([len(t) for t in tails] + [0], dtype=np.int64)
        tail = np.zeros((len(tails) + 1, max(int(tail_len.max()), 1)), dtype=np.uint8)
        for i, t in enumerate(tails):
            tail[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        uid = UidSource.chars(flows.uid)
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


def _raw_batches(paths, batch_size: int, report, warnings: list[str]):
    """(RawBatch, its file's snaplen by interface) of every readable file, frames numbered
    across files."""
    from portlabel.capture.reader import open_capture

    frame = 0
    for path in paths:
        try:
            reader = open_capture(path)
            for raw in reader.batches(batch_size, frame):
                frame += len(raw)
                yield raw, reader.snaplens
        except CaptureError as exc:
            report(exc)
            continue
        warnings.extend(f"{path}: {note}" for note in reader.warnings)


def write_labelled(args, report, warnings: list[str], batch_size: int = 65536) -> int:
    """Write ``args.output`` (pcapng, labels as comments); the number of packets written."""
    from portlabel.atomicfile import atomic_output
    from portlabel.capture.decode import decode
    from portlabel.writers.pcapng_comments import PcapngCommentWriter

    if args.backend != "native":
        raise UsageError("-o copies the original packet bytes: it needs --backend native")
    labeller = PacketLabeller(args)
    try:
        with atomic_output(args.output) as out:
            writer = PcapngCommentWriter(out)
            for raw, snaplens in _raw_batches(args.captures, batch_size, report, warnings):
                comments, lengths = labeller.comments(decode(raw))
                writer.write(raw, snaplens, comments, lengths)
    except OSError as exc:
        raise InputError(args.output, f"cannot write: {exc.strerror or exc}") from None
    return writer.packets
