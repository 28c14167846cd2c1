"""A real OpenAI-compatible server on loopback: `transformers serve` with scripted tiny models.

Each model is a one-layer Llama whose weights are set by hand so that greedy
decoding answers with a fixed text: the attention and MLP outputs are zero,
so each next token depends on the current token only. The chat template
ends the prompt with ``<first>``, or with ``<reask>`` when the last message
contains 'was not valid' (the planner's re-ask); ``<first>`` is followed by
the first answer, ``<reask>`` by the second, then end-of-sequence. A
``ramble`` model repeats its answer token until ``max_tokens`` instead, so
it is slow and truncated. Everything else (HTTP, JSON, the chat template,
tokenization, generation) is the real server's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TEMPLATE = (
    "{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{% if messages[-1]['content'] is string and 'was not valid' in messages[-1]['content'] %}"
    "<reask>{% else %}<first>{% endif %}{% endif %}"
)


def build_model(folder: Path, first: str, reask: str, *, ramble: bool = False) -> Path:
    """Save a scripted model that answers ``first``, then ``reask`` when re-asked."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "<eos>": 1, "<first>": 2, "<reask>": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    fast.add_tokens([first] if first == reask else [first, reask])
    fast.chat_template = TEMPLATE
    answer = {name: fast.convert_tokens_to_ids(text) for name, text in (("first", first), ("reask", reask))}
    config = LlamaConfig(vocab_size=len(fast), hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1 << 16,
                         tie_word_embeddings=False, bos_token_id=None, eos_token_id=1, pad_token_id=1)  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        # directions: 0 any prompt token, 1 <first>, 2 <reask>, 3 an answer token
        emb[:, 0] = 1.0
        for token, direction in ((2, 1), (3, 2), (answer["first"], 3), (answer["reask"], 3)):
            emb[token] = 0.0
            emb[token, direction] = 1.0
        head[answer["first"], 1] = 10.0
        head[answer["reask"], 2] = 10.0
        head[1, 0] = 10.0
        if ramble:  # an answer token is followed by itself, forever
            head[answer["first"], 3] = 10.0
        else:
            head[1, 3] = 10.0
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`transformers serve` on 127.0.0.1, started and stopped by the tests."""

    def __init__(self, log: Path) -> None:
        exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
        if exe is None:
            raise RuntimeError("the `transformers` command is not installed (pip install 'transformers[serving]')")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [exe, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within 120 s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._log.close()
