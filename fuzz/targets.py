"""What the fuzzers feed: every reader of untrusted bytes, and the rules they must keep.

``run_capture(path)`` reads a file as a capture the way ``portlabel label`` does (the
pcap/pcapng readers, the decompressors, the decoder and the flow kernels, the labels) and
also through a BPF filter (the ``_bpfvm`` kernel); ``run_log(path)`` enriches it as a
Zeek log (TSV or JSON, plain or gzip). Both may fail only with portlabel's one-line
errors (``InputError`` and its kinds); any other exception, a crash or a hang is a
finding. ``check_memory`` holds them to the memory rule: what a reader allocates stays a
small multiple of the input's size (``input_size``: its decompressed size when it is
compressed, since a reader must hold a record as large as the data says).

Shared by the atheris harness (``fuzz/fuzz_inputs.py``), the hypothesis mutation test
(``tests/test_fuzz_mutations.py``) and the sanitizer run (``fuzz/sanitized_corpus.py``).
"""

from __future__ import annotations

import gc
import io
import tracemalloc
import warnings

MEMORY_FACTOR = 64  # allocation allowed per input byte, on top of MEMORY_FLOOR
MEMORY_FLOOR = 48 << 20  # fixed costs: batch buffers, the flow table's first slots


def run_capture(path: str) -> int:
    """Label ``path`` as a capture and read it through a BPF filter; the flows made."""
    import portlabel
    from portlabel.capture.inputs import CaptureInputs
    from portlabel.errors import InputError, UsageError

    flows = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CaptureWarning: damage is expected here
        try:
            flows = portlabel.label(path, errors="warn", batch_size=256).num_rows
        except InputError:
            pass
        try:
            inputs = CaptureInputs([path], 256, on_problem=lambda exc: None,
                                   packet_filter="tcp port 80 or udp")  # fmt: skip
            for _ in inputs.raw_batches():
                pass
        except (InputError, UsageError):
            pass  # UsageError: the filter cannot apply to the link type the input names
    return flows


def run_log(path: str) -> int:
    """Enrich ``path`` as a Zeek log into memory; the records enriched."""
    from portlabel.enrich.api import enrich_log
    from portlabel.errors import InputError

    out = io.BytesIO()
    try:
        return enrich_log(path, out).records
    except InputError:
        return 0


def input_size(path: str) -> int:
    """The bytes a reader may see in ``path``: decompressed, when it is compressed."""
    from portlabel.capture.compression import DecompressedStream, sniff_compression

    with open(path, "rb") as raw:
        kind = sniff_compression(raw.read(8))
        size = raw.seek(0, 2)
        if kind is None:
            return size
        raw.seek(0)
        stream, total = DecompressedStream(raw, kind), 0
        try:
            while piece := stream.read(1 << 20):
                total += len(piece)
        except (EOFError, ValueError):
            pass
        return max(size, total)


def check_memory(run, path: str, size: int) -> int:
    """Run ``run(path)``; raise MemoryError if its peak allocation broke the rule."""
    gc.collect()  # garbage of an earlier run is not this run's allocation
    tracemalloc.start()
    try:
        result = run(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    allowed = MEMORY_FLOOR + MEMORY_FACTOR * size
    if peak > allowed:
        raise MemoryError(f"{run.__name__} allocated {peak:,} bytes for a {size:,}-byte input")
    return result
