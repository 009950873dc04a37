# Table 2, its comparison with the paper and the plots. They read only the small
# summaries in the model directories (never the weights), so the README's rebuild command
#   snakemake --cores 1 table --allowed-rules table2 plots sweep table --forcerun table2 plots
# (with a compute sweep in the config, --forcerun sweep too)
# regenerates them from cached results without any training or fine-tuning job.
from kdbudget.report.layout import has_sweeps, layout_from_plan, layout_to_data


# Seconds of work on small files: never worth a cluster job.
localrules:
    table2,
    plots,
    sweep,
    table,


REPORT_LAYOUT = layout_to_data(layout_from_plan(MODELS, config["groups"]))
TABLES = "results/tables"
PLOTS = "results/plots"
# The sweep's table and plot are outputs of `table` only when a group runs at several budget scales.
SWEEPS = has_sweeps(config)


rule table2:
    input:
        pretrain=pretrained_models(),
        glue=glue_summaries(),
    output:
        md=f"{TABLES}/table2.md",
        tex=f"{TABLES}/table2.tex",
        csv=f"{TABLES}/table2.csv",
        html=report(f"{TABLES}/table2.html", caption="../workflow/report/table2.rst", category="Table 2"),
        vs_paper=f"{TABLES}/table2_vs_paper.md",
        vs_paper_html=report(
            f"{TABLES}/table2_vs_paper.html", caption="../workflow/report/table2_vs_paper.rst", category="Table 2"
        ),
    params:
        layout=REPORT_LAYOUT,
        models=list(MODELS),
        tasks=report_task_list,
    log:
        "logs/report/table2.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/report_table.py"


rule plots:
    input:
        pretrain=pretrained_models(),
        glue=glue_summaries(),
    output:
        throughput=report(f"{PLOTS}/throughput.png", caption="../workflow/report/throughput.rst", category="Plots"),
        loss_curves=report(f"{PLOTS}/loss_curves.png", caption="../workflow/report/loss_curves.rst", category="Plots"),
        glue_delta=report(f"{PLOTS}/glue_delta.png", caption="../workflow/report/glue_delta.rst", category="Plots"),
        budget=report(f"{PLOTS}/budget.png", caption="../workflow/report/budget.rst", category="Plots"),
        pdf=expand(f"{PLOTS}/{{plot}}.pdf", plot=["throughput", "loss_curves", "glue_delta", "budget"]),
    params:
        layout=REPORT_LAYOUT,
        models=list(MODELS),
        tasks=report_task_list,
    log:
        "logs/report/plots.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/report_plots.py"


# Groups at several budget scales: per KD strategy, the compute at which No-KD reaches its Avg
# (sweep.md/csv), and GLUE Avg against compute (compute_quality), the teacher's cost charged or not.
rule sweep:
    input:
        pretrain=pretrained_models(),
        glue=glue_summaries(),
    output:
        md=f"{TABLES}/sweep.md",
        csv=f"{TABLES}/sweep.csv",
        png=report(
            f"{PLOTS}/compute_quality.png", caption="../workflow/report/compute_quality.rst", category="Plots"
        ),
        pdf=f"{PLOTS}/compute_quality.pdf",
    params:
        layout=REPORT_LAYOUT,
        models=list(MODELS),
        tasks=report_task_list,
        amortise_over=config["report"]["amortise_over"],
    log:
        "logs/report/sweep.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/report_sweep.py"


rule table:
    input:
        rules.table2.output,
        rules.plots.output,
        rules.sweep.output if SWEEPS else [],
