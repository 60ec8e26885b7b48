"""Print the top-level module the Gradio page cannot import in this environment (nothing when all import).

Run at UI image build time (docker/ui.Dockerfile) to learn whether gradio_ui still needs torch.
"""

import sys

try:
    import gradio_ui.__main__  # noqa: F401
    import gradio_ui.app  # noqa: F401
    import gradio_ui.client  # noqa: F401
    import gradio_ui.examples  # noqa: F401
except ModuleNotFoundError as exc:
    print((exc.name or "").split(".")[0])
sys.exit(0)
