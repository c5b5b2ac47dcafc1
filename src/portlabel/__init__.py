"""portlabel: label network flows with the IANA service name and port number registry.

Data flows one way: source -> packet batches (columnar) -> flows -> labels -> writers.

Labelling captures
    label(paths, **options)            all labelled flows of capture file(s), or of packets
                                       in memory (scapy, pyshark, Frame): a pyarrow Table
    iter_labelled(paths, **options)    the same, table by table as flows finish
    LabelPipeline(registry, config)    push-style: feed batches, get labelled flows
    StreamLabeller(...)                push-style, one packet (Frame) at a time
Plugins (modules of their own, imported when used)
    portlabel.scapy                    label(), sniff(prn=/session=FlowLabeller), install()
    portlabel.pyshark                  FlowLabeller for apply_on_packets, labelled_flows()
    portlabel.nfstream                 IanaLabels, an NFPlugin (pip install portlabel[nfstream])
    portlabel.plugins                  entry points: portlabel.writers, .registry_sources
    FlowConfig / flow_config(...)      timeouts and keying (the CLI's flow options)
    FlowTable                          the flow engine itself
Captures
    open_capture(path)                 one pcap/pcapng file (any compression, ``-``: stdin)
    CaptureInputs(paths, ...)          several files read as one capture
    Frame(data, ts_ns, wirelen, linktype)   one packet held in memory
    packet_batches(paths, backend)     decoded PacketBatches (native, scapy or tshark)
    PacketBatch / RawBatch             the columnar batch types
The registry
    default_registry() / load_registry(path, overlays) / compile_registry(source)
    Registry                           the compiled, memory-mapped array lookup
    lookup(transports, ports)          vectorised lookup in the default registry
    read_source(path)                  any registry source file as records
    iana_columns(registry, protos, ports)   the iana.* columns as pyarrow arrays
Zeek logs
    enrich_log(src, dst)               append iana.* columns to a conn.log (TSV/JSON, gzip)
    add_iana_columns(frame)            the same for a pandas DataFrame or pyarrow Table
Errors
    PortlabelError, InputError, CaptureWarning

The names are resolved on first use so that ``import portlabel`` stays cheap; each lives
in the module that owns it.
"""

from __future__ import annotations

from portlabel.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # registry
    "Registry": "portlabel.registry.compiled",
    "load_registry": "portlabel.registry.loading",
    "default_registry": "portlabel.registry.loading",
    "lookup": "portlabel.registry.loading",
    "compile_registry": "portlabel.registry.build",
    "read_source": "portlabel.registry.sources",
    "iana_columns": "portlabel.labelling.iana",
    # the main job: captures -> labelled flows
    "label": "portlabel.labelling.api",
    "iter_labelled": "portlabel.labelling.api",
    "CaptureWarning": "portlabel.labelling.api",
    "LabelPipeline": "portlabel.labelling.pipeline",
    "StreamLabeller": "portlabel.labelling.stream",
    "Frame": "portlabel.capture.frames",
    "FlowTable": "portlabel.flows.engine",
    "FlowConfig": "portlabel.flows.config",
    "flow_config": "portlabel.flows.config",
    # Zeek log enrichment
    "enrich_log": "portlabel.enrich",
    "add_iana_columns": "portlabel.enrich",
    # errors
    "PortlabelError": "portlabel.errors",
    "InputError": "portlabel.errors",
    # capture
    "PacketBatch": "portlabel.capture.batch",
    "RawBatch": "portlabel.capture.batch",
    "open_capture": "portlabel.capture.reader",
    "CaptureInputs": "portlabel.capture.inputs",
    "packet_batches": "portlabel.capture.inputs",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
