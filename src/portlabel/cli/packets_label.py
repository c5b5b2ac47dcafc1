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
        packets in no flow get none."""
        labels = self.labels(batch)
        S = np.strings
        uid = _texts(labels["uid"])
        service = _texts(labels["iana.service"], null="-")
        transport = _texts(labels["iana.transport"])
        status = _texts(labels["iana.status"], null="-")
        port_table = pa.Table.from_arrays([labels["iana.port"]], names=["p"])
        port = column_values(port_table, "p", fill=0).astype(np.int64)
        has_port = np.asarray(labels["iana.port"].is_valid())
        where = S.add(S.add(S.add("/", transport), " "), port.astype(TEXT))
        text = S.add(S.add("uid=", uid), S.add(" iana=", service))
        text = np.where(has_port, S.add(text, where), text)
        text = S.add(S.add(S.add(text, " ("), status), ")")
        text = np.where(uid == "", "", text)
        raw = S.encode(text, "utf-8")
        width = max(raw.dtype.itemsize, 1)
        matrix = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(len(raw), width)
        return matrix, S.str_len(raw).astype(np.int64)


def _raw_batches(paths, batch_size: int, report, warnings: list[str]):
    """(RawBatch, snaplen) of every readable file, frames numbered across files."""
    from portlabel.capture.reader import open_capture

    frame = 0
    for path in paths:
        try:
            reader = open_capture(path)
            snaplen = reader.pcap_header.snaplen if reader.pcap_header is not None else 0
            for raw in reader.batches(batch_size, frame):
                frame += len(raw)
                yield raw, snaplen
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
            for raw, snaplen in _raw_batches(args.captures, batch_size, report, warnings):
                comments, lengths = labeller.comments(decode(raw))
                writer.write(raw, snaplen, comments, lengths)
    except OSError as exc:
        raise InputError(args.output, f"cannot write: {exc.strerror or exc}") from None
    return writer.packets
