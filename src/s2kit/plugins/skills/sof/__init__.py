"""SOF, skills from optical flow: dense flow of action-free videos (`flow`, read by `frames`), the skill tokenizer
that learns discrete skill tokens from it (`fsq`, `tokenizer`; its data in `videos`, its training in `training`),
and their command group (`cli`).

Nothing is imported here: the command group loads with every ``s2kit`` run,
numba and torch only when flow is computed or a tokenizer trained.
"""
