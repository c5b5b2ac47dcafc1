"""Labelling: IANA labels for flows and packets, and the pipeline that produces them.

- ``iana``: the ``iana.*`` columns of (IP protocol, service port) pairs, one gather per
  column from the compiled registry (the column contract, ``IANA_FIELDS``).
- ``flows``: which port of a flow is its service port, and a flow table (or a batch's
  packets) with the label columns appended (``label_flows``, ``labelled_schema``).
- ``pipeline``: packet batches in, labelled flow tables out (``LabelPipeline``,
  ``label_batches``); pure, no files.
- ``stages``: running one pipeline stage ahead of the next in a thread.
- ``api``: ``label`` and ``iter_labelled`` for capture files.

The package is named ``labelling`` so that ``portlabel.label`` stays the function.
"""
