# The corpus stage: extraction, cleaning and sharding (gather then scatter),
# tokenizer, tokenization and packing per shard, and meta.json (gather).


rule extract_wikipedia:
    input:
        # A function, evaluated only when this job is needed: with corpus.wikipedia.source none
        # the rule is never planned (its dump has no path).
        lambda wildcards: wikipedia_dump(),
    output:
        f"{DATA}/extracted/wikipedia.jsonl",
    log:
        "logs/data/extract_wikipedia.log",
    threads: resources_of("extract")["threads"]
    resources:
        runtime=resources_of("extract")["runtime"],
        mem_mb=resources_of("extract")["mem_mb"],
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/extract_wikipedia.py"


rule read_books:
    input:
        # As extract_wikipedia: evaluated only when needed (not with corpus.bookcorpus.source none).
        lambda wildcards: book_folder(),
    output:
        f"{DATA}/extracted/bookcorpus.jsonl",
    log:
        "logs/data/read_books.log",
    threads: 1
    resources:
        runtime=resources_of("extract")["runtime"],
        mem_mb=resources_of("extract")["mem_mb"],
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/read_books.py"


rule shard_documents:
    input:
        extracted_documents(),
    output:
        train=expand(f"{DATA}/docs/{{shard}}.jsonl", shard=TRAIN_SHARDS),
        validation=expand(f"{DATA}/docs/{{shard}}.jsonl", shard=VALIDATION_SHARDS),
        stats=f"{DATA}/docs/stats.json",
    params:
        min_doc_words=CORPUS["min_doc_words"],
        validation_fraction=CORPUS["validation_fraction"],
        seed=config["seed"],
    log:
        "logs/data/shard_documents.log",
    threads: resources_of("data")["threads"]
    resources:
        runtime=resources_of("data")["runtime"],
        mem_mb=resources_of("data")["mem_mb"],
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/shard_documents.py"


rule tokenizer:
    input:
        tokenizer_input,
    output:
        directory(f"{DATA}/tokenizer"),
    params:
        tokenizer=config["tokenizer"],
    log:
        "logs/data/tokenizer.log",
    threads: 1
    resources:
        runtime=resources_of("data")["runtime"],
        mem_mb=resources_of("data")["mem_mb"],
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/tokenizer.py"


rule pack_shard:
    input:
        docs=f"{DATA}/docs/{{shard}}.jsonl",
        tokenizer=f"{DATA}/tokenizer",
    output:
        f"{DATA}/{{shard}}.npy",
    params:
        packing=config["packing"],
        seed=config["seed"],
    log:
        "logs/data/pack_{shard}.log",
    threads: resources_of("data")["threads"]
    resources:
        runtime=resources_of("data")["runtime"],
        mem_mb=resources_of("data")["mem_mb"],
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/pack_shard.py"


rule data_meta:
    input:
        train=packed_shards(TRAIN_SHARDS),
        validation=packed_shards(VALIDATION_SHARDS),
        tokenizer=f"{DATA}/tokenizer",
        stats=f"{DATA}/docs/stats.json",
        # A downloaded dump's record (which run "latest" was); other sources have none.
        wikipedia_record=(
            [wikipedia_dump().removesuffix(".xml.bz2") + ".json"] if CORPUS["wikipedia"]["source"] == "download" else []
        ),
    output:
        f"{DATA}/meta.json",
    params:
        packing=config["packing"],
        seed=config["seed"],
        language=LANGUAGE,
    log:
        "logs/data/meta.log",
    threads: 1
    resources:
        runtime=job_minutes(10),
        mem_mb=2000,
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/data_meta.py"


rule data:
    input:
        f"{DATA}/meta.json",
