"""Hardware models: the FastSwitch accelerator template, its latency model and DSE (``hw.accelerator``)."""
