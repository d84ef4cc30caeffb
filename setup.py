"""Everything about the package is in pyproject.toml; this file only adds lm-eval's startup hook to the install."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# A .pth line starting with `import` runs at every interpreter start; the module it names imports nothing heavy.
HOOK_FILE, HOOK_LINE = "llmexp-lm-eval.pth", "import llmexp.evaluation.lm_eval_plugin\n"


class BuildWithLmEvalHook(build_py):
    """Also write llmexp-lm-eval.pth at the top of site-packages (wheel and editable installs alike): it lets
    `lm_eval --model llmexp` find our model (src/llmexp/evaluation/lm_eval_plugin.py says how)."""

    def run(self) -> None:
        super().run()
        # An editable install builds no package tree: its wheel is the install folder itself.
        target = Path(self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib)
        target.mkdir(parents=True, exist_ok=True)
        (target / HOOK_FILE).write_text(HOOK_LINE)


setup(cmdclass={"build_py": BuildWithLmEvalHook})
