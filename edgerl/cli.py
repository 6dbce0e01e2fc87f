"""The ``edgerl`` command: a dispatcher over the modules in ``edgerl/commands/``.

Each command module has ``add_arguments(parser)`` and ``run(args) -> int``. Command modules are
imported only when their command runs, so ``edgerl --help`` stays fast and the runtime-only
commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgerl import __version__
from edgerl.errors import EdgerlError

# name -> (module, one-line help). The order is the pipeline a policy travels.
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("edgerl.commands.import_", "turn a policy trained by SB3, rsl_rl, CleanRL, skrl or ONNX into an edgerl policy"),
    "train": ("edgerl.commands.train", "train an agent (SAC/PPO/DQN), optionally pruning it while it learns"),
    "distill": ("edgerl.commands.distill", "train a small student policy to act as a teacher checkpoint does"),
    "compact": ("edgerl.commands.compact", "make the smallest network that computes the same deployed function"),
    "export": ("edgerl.commands.export", "export a policy to one checked ONNX file plus contract.json"),
    "deploy": ("edgerl.commands.deploy", "build a verified bundle (ONNX, contract, runtime, device files) for a target"),
    "bench": ("edgerl.commands.bench", "single-stream latency of compact policies against the dense baseline"),
    "run": ("edgerl.commands.run", "drive an env through the on-robot runtime and compare with the torch policy"),
    "sweep": ("edgerl.commands.sweep", "train envs x seeds x variants from a spec, locally or on Ray, with bootstrap intervals"),
}


ALIASES: dict[str, str] = {module.rsplit(".", 1)[1]: name for name, (module, _) in COMMANDS.items()
                           if module.rsplit(".", 1)[1] != name}
"""A command's module name where it differs from the command (``import_``: ``import`` is a Python
keyword), accepted as the same command."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgerl", description="Train, prune, compact, export and deploy RL policies.")
    parser.add_argument("--version", action="version", version=f"edgerl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        aliases = [a for a, n in ALIASES.items() if n == name]
        p = sub.add_parser(name, aliases=aliases, help=help_text, description=help_text)
        if only is None or only == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Only the chosen command's module is imported (its arguments are needed to parse).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    chosen = ALIASES.get(chosen or "", chosen)
    parser = build_parser(only=chosen if chosen in COMMANDS else "")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.command = ALIASES.get(args.command, args.command)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except EdgerlError as e:
        print(f"edgerl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgerl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
