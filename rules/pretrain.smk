# Pretraining: the teachers the pipeline trains itself, then every student
# under its group's budget. KD runs of a 'reference' group take the No-KD
# run's summary as an input: the DAG runs the reference first.


localrules:
    fetch_teacher,


rule fetch_teacher:
    output:
        directory("resources/teachers/{name}"),
    params:
        hub_name=lambda wildcards: next(
            t["name"] for t in TEACHERS.values() if t["source"] == "hub" and slug(t["name"]) == wildcards.name
        ),
    log:
        "logs/sources/fetch_teacher_{name}.log",
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/fetch_teacher.py"


rule pretrain_teacher:
    input:
        data=f"{DATA}/meta.json",
    output:
        # The whole Hugging Face model directory (weights, config, tokenizer, summary.json,
        # metrics.jsonl), written atomically: a target of its own (snakemake results/teachers/NAME).
        directory("results/teachers/{teacher}"),
    params:
        spec=pretrain_teacher_spec,
        gpus=pretrain_resources("gpu"),  # torchrun's process count, however the cluster is asked for them
    log:
        "logs/pretrain/teacher-{teacher}.log",
    threads: pretrain_resources("threads")
    resources:
        cpus_per_gpu=pretrain_resources("cpus_per_gpu"),
        mem_mb=pretrain_resources("mem_mb"),
        runtime=pretrain_resources("runtime"),
        slurm_extra=PRETRAIN_SLURM_EXTRA,
        **slurm_site(gpus=pretrain_resources("gpu")),
    retries: pretrain_retries("pretrain_teacher")
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/pretrain.py"


rule pretrain_model:
    input:
        unpack(pretrain_inputs),
    output:
        directory("results/pretrain/{model}"),  # as the teachers': snakemake results/pretrain/minilm6
    params:
        spec=pretrain_spec,
        gpus=pretrain_resources("gpu"),
    log:
        "logs/pretrain/{model}.log",
    threads: pretrain_resources("threads")
    resources:
        cpus_per_gpu=pretrain_resources("cpus_per_gpu"),
        mem_mb=pretrain_resources("mem_mb"),
        runtime=pretrain_resources("runtime"),
        slurm_extra=PRETRAIN_SLURM_EXTRA,
        **slurm_site(gpus=pretrain_resources("gpu")),
    retries: pretrain_retries("pretrain_model")
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/pretrain.py"


rule pretrain:
    input:
        pretrained_models(),
