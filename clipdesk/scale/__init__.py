"""Beyond one process: index folders into Parquet shards (Ray Data) and search them with an ANN index.

Optional (`pip install clipdesk[scale]`): nothing here is imported by the app or by the
single-process commands, and ray/pyarrow/faiss/usearch are imported inside functions only.
"""
