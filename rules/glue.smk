# GLUE: the task data (generated for the demo, fetched or given for the
# paper), one fine-tuning job per model x task x grid cell, and a per-model
# best-of-grid summary in results/glue/{model}/ (a target of its own).


localrules:
    fetch_glue,
    glue_summary,


rule glue_demo_data:
    output:
        directory("resources/glue/demo"),
    params:
        demo=CORPUS["demo"],
        glue_demo=GLUE["demo"],
    log:
        "logs/glue/demo_data.log",
    threads: 1
    resources:
        runtime=job_minutes(10),
        mem_mb=2000,
        **slurm_site(),
    conda:
        "../envs/glue.yaml"
    script:
        "../workflow/scripts/glue_demo_data.py"


rule fetch_glue:
    output:
        directory("resources/glue/hub"),
    params:
        hub_name=GLUE["hub_name"],
        tasks=GLUE["tasks"],
    log:
        "logs/glue/fetch_glue.log",
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/glue.yaml"
    script:
        "../workflow/scripts/fetch_glue.py"


rule finetune_cell:
    input:
        model="results/pretrain/{model}",
        glue=glue_dir(),
    output:
        "results/finetune/{model}/{task}/{cell}.json",
    params:
        cell=lambda wildcards: GLUE_CELLS[wildcards.cell],
        # Only what fine-tuning reads: a new task or grid value must not rerun every finished cell.
        settings={key: GLUE[key] for key in FINETUNE_SETTINGS},
        gpus=glue_resources("gpu"),  # a job that asked for a GPU must see one
        keep_weights=lambda wildcards: (
            f"results/finetune/{wildcards.model}/{wildcards.task}/{wildcards.cell}"
            if GLUE["keep_weights"]
            else None
        ),
    log:
        "logs/glue/{model}/{task}/{cell}.log",
    threads: glue_resources("threads")
    resources:
        cpus_per_gpu=glue_resources("cpus_per_gpu"),
        runtime=glue_resources("runtime"),
        mem_mb=glue_resources("mem_mb"),
        **slurm_site(gpus=glue_resources("gpu")),
    conda:
        "../envs/glue.yaml"
    script:
        "../workflow/scripts/finetune.py"


rule glue_summary:
    input:
        cells=glue_cell_results,
        glue=glue_dir(),
    output:
        directory("results/glue/{model}"),
    log:
        "logs/glue/{model}/summary.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/glue.yaml"
    script:
        "../workflow/scripts/glue_summary.py"


rule glue:
    input:
        glue_summaries(),
