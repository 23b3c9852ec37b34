"""An example vlprompt-bench plugin: CoOp with per-run gradient-norm clipping."""
