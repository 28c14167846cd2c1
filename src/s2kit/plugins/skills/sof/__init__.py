"""SOF, skills from optical flow: dense flow of action-free videos (`flow`) and its command group (`cli`).

Nothing is imported here: the command group loads with every ``s2kit`` run,
numba only when flow is computed.
"""
