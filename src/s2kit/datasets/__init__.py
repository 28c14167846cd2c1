"""LeRobot v3.0 datasets (pyarrow and PyAV): the writer, the reader, image helpers.

Below the workflows and the learning kit, which both read and write datasets; not core,
which stays free of pyarrow and FFmpeg.
"""
