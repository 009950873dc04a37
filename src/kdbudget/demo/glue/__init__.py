"""The demo's eight GLUE tasks, in the official GLUE download layout, from the demo world.

Why: the demo's fine-tuning stage must read the same files, with the same code, as a
real GLUE run, and its scores must reward what pretraining taught.  Every task is
built from ``demo_world(words, seed, wiki_fraction)``, the world whose facts the demo
pretraining corpus states, in the corpus's own grammar.

How knowledge enters: each task mixes pairs that the text alone decides (a
different object, a negation, a missing word) with pairs that only the world decides:
an entity named in one sentence and *described* in the other ("the bank that Mira
Lerigel works for"; :class:`~kdbudget.demo.glue.language.Describer`), a false fact
stated fluently, an opinion whose polarity only the world's ``likes``/``dislikes``
facts give.  A quarter to a third of the examples of each pair task (a fifth of
SST-2) are of the second kind, so a model that knows the world scores clearly
higher, and a model that does not still learns the task.  CoLA tests the grammar
the corpus is written in.

Splits: 30% of the world's entities (drawn with ``task_seed``) are *dev entities*.
Every true fact that an example states (descriptions included) is about an entity of
its split, so no fact that a dev example tests is stated in the training files:
only pretraining can teach it.  No example (the tuple of its texts) occurs twice in
a task, across train and dev.

Sizes: :data:`TRAIN_SIZES` and :data:`DEV_SIZES`.  ``sizes`` overrides train sizes
by task name (``cola``, ``sst2``, ... as in :mod:`kdbudget.glue.tasks`; the folder
names ``CoLA``, ``SST-2``, ... are accepted too); the dev sizes of an overridden task
scale in proportion (at least 10 each).  Labels are
balanced exactly (each label ``n // k`` or ``n // k + 1`` times); STS-B draws its
eight similarity levels equally often.

The files are written as in the official download: tab-separated UTF-8, no
quoting (quotes stay raw inside fields), CoLA without a header, MNLI with
``label1`` and ``gold_label`` in train and dev.  MNLI's ``pairID`` is the
``promptID`` plus a letter that does *not* encode the label (the real one does).

Modules
-------
``write``    :func:`write_demo_glue` (the entry point): sizes, the split, each task's folder.
``context``  one split's view of the world and the helpers every builder shares.
``single``   CoLA, SST-2; ``pairs`` MRPC, QQP, STS-B; ``nli`` MNLI, RTE, QNLI: one builder per task.
``draw``     distinct examples with balanced labels; ``files`` the official columns of each task.
``language`` descriptions, passages, dialogue and other sentences the tasks add to the grammar.
"""

from kdbudget.demo.glue.write import DEV_SIZES, TRAIN_SIZES, write_demo_glue

__all__ = ["DEV_SIZES", "TRAIN_SIZES", "write_demo_glue"]
