"""Fine-tune a word mapper (phrase -> one word) with `transformers.Trainer`.

With no arguments: the built-in WordNet adjective -> attribute data on the shipped all-MiniLM-L6-v2 backbone,
written to `bertmap-attributes/`.

    python train.py
    python train.py --model_name_or_path bert-base-uncased --num_train_epochs 5 --output_dir my-mapper
    python train.py --train_file pairs.csv --phrase_column phrase --target_column word
    python train.py args.json                       # the same arguments from a JSON (or YAML) file
    accelerate launch train.py ...                  # several processes / GPUs (see README)

Every `transformers.TrainingArguments` flag works; `python train.py --help` lists them all.
"""

from hf_bertmap.training import main

if __name__ == "__main__":
    main()
