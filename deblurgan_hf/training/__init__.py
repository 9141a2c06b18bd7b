"""What `train_accelerate.py` uses, one concern per module.

- `recipes`: YAML/JSON recipe files whose keys are the script's flags, and the resolved options.
- `schedules`: learning-rate schedules (a torch `LambdaLR`, stepped once per optimizer update).
- `steps`: one critic update and one generator update, each saying whether it was finite.
- `checkpoints`: the run folder: its lock, `checkpoint-<step>` folders, resume, `metrics.jsonl`.
- `validation`: PSNR/SSIM on the validation set, and those figures as model-card results.
- `plots`: training curves and the blur | output | sharp image grids.
- `publish`: the Hub-ready `best/` and `final/` folders, the upload, the weights checksum.
"""
