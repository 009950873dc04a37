# Raw corpus sources: the embedded demo's generator, or the paper's downloads.
# Downloads need the internet, so they run as local rules (never on compute nodes).


localrules:
    download_wikipedia,
    fetch_bookcorpus,
    fetch_tokenizer,


rule demo_corpus:
    output:
        dump=demo_dump(),
        books=directory("resources/demo/books"),
    params:
        demo=CORPUS["demo"],
        language=LANGUAGE,
    log:
        "logs/sources/demo_corpus.log",
    threads: 1
    resources:
        runtime=job_minutes(10),
        mem_mb=2000,
        **slurm_site(),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/demo_corpus.py"


rule download_wikipedia:
    output:
        dump="resources/wikipedia/{language}wiki-{date}-pages-articles.xml.bz2",
        # Which dated run the dump is (the file keeps the configured name, e.g.
        # "latest", so that the DAG is known before anything is downloaded).
        record="resources/wikipedia/{language}wiki-{date}-pages-articles.json",
    params:
        mirror=CORPUS["wikipedia"]["mirror"],
        sha1=CORPUS["wikipedia"]["sha1"],
    log:
        "logs/sources/download_wikipedia_{language}_{date}.log",
    threads: 1
    resources:
        runtime=24 * 60,
        mem_mb=1000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/download_wikipedia.py"


rule fetch_bookcorpus:
    output:
        directory("resources/bookcorpus/{name}"),
    params:
        hub_name=CORPUS["bookcorpus"]["hub_name"],
        lines_per_book=CORPUS["bookcorpus"]["hub_lines_per_book"],
    log:
        "logs/sources/fetch_bookcorpus_{name}.log",
    threads: 1
    resources:
        runtime=6 * 60,
        mem_mb=8000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/fetch_bookcorpus.py"


rule fetch_tokenizer:
    output:
        directory("resources/tokenizers/{name}"),
    params:
        hub_name=config["tokenizer"]["hub_name"],
    log:
        "logs/sources/fetch_tokenizer_{name}.log",
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/fetch_tokenizer.py"
