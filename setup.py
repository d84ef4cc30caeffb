"""Everything about the package is in pyproject.toml; this file only adds lm-eval's startup hook to the install."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK = "src/llmexp-lm-eval.pth"


class BuildWithLmEvalHook(build_py):
    """Also put llmexp-lm-eval.pth at the top of site-packages (wheel and editable installs alike): it lets
    `lm_eval --model llmexp` find our model (llmexp/evaluation/lm_eval_plugin.py says how)."""

    def run(self) -> None:
        super().run()
        # An editable install builds no package tree: its wheel is the install folder itself.
        target = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        self.copy_file(HOOK, str(Path(target) / Path(HOOK).name))


setup(cmdclass={"build_py": BuildWithLmEvalHook})
