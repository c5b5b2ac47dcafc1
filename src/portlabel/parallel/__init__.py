"""Labelling on many cores and many machines, with the flows of one sequential run.

A capture given as several files (rotated captures) is labelled one file per worker
(``part.label_part``: a function of the file and the flow options, run in a process of
a local pool, ``jobs``, or as a Dask task, ``portlabel.dask``). Each worker starts with
no flow and hands back, besides its finished flows, the flows still open at the end of
its file and the *heads*: the packet rows of each key's first flow in the file.
``stitch.Stitcher`` then joins the parts in file order: the flows still open at the end
of the files before go on with the heads of the same keys, replayed through a flow table,
and the worker's flows from the first flow both runs start at the same packet onwards are
kept as they are. Uids are re-drawn from the flows' capture positions, so a seeded run
gives the uids of the sequential one.
"""
