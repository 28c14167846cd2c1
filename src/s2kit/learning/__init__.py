"""The learning kit: the torch layer every learned component shares.

Plugins import it; core never does. A learned model is a folder of its own
(configuration, modeling, a thin executor or skill); the kit gives it the
rest: the policy contract (`policy`), batch keys (`batch`), inputs shared by
training and inference (`inputs`: state encoding, normalization, image
squaring), datasets as batches (`data`), the trainer (`trainer`), checkpoints
found through the registry (`checkpoints`), action heads (`heads`), encoders
(`encoders`, `text`), ONNX export with its runtime backend (`export`), and
the one executor base every kit policy runs under (`executor`).

Importing this package imports no torch: the modules that need it import it.
"""
