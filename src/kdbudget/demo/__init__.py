"""The embedded demo: a seeded synthetic world and the pretraining corpora made from it.

Why: the pipeline must run end to end offline on a laptop.  Instead of Wikipedia and
BookCorpus, :func:`write_demo_corpus` writes the same *formats* (a bz2 MediaWiki XML
dump that wikiextractor 3.1.0 processes, and a folder of plain-text books) about a
small world of consistent facts, in a small English grammar.  A bigger BERT can
memorise more of the facts and the grammar than a smaller one, and the demo GLUE
tasks are built from the same world, so pretraining matters for them.

Modules
-------
``world``    :class:`Entity`, :class:`Fact`, :class:`World`,
             :data:`~kdbudget.demo.world.RELATIONS` (typing of relations); imports nothing of the demo.
``build``    :func:`build_world` (names, families, places and ties drawn from a seed).
``realise``  :class:`Realiser` (fact -> sentences), :func:`sentiment_sentence`,
             :func:`corrupt`, :data:`~kdbudget.demo.realise.SENTIMENT`.
``wiki_dump`` the dump writer; ``books`` the book writer; ``corpus`` the entry point.
``glue``     the eight GLUE-like tasks from the same world (:func:`write_demo_glue`; a package).

API for building GLUE-like tasks
--------------------------------
``world = demo_world(words, seed)`` (the world :func:`write_demo_corpus` used) or
``build_world(seed, n_entities)``.

* Facts: ``world.facts`` (tuple of ``Fact(subject: Entity, relation: str, object:
  Entity | str)``); ``world.facts_about(e, rel)``, ``world.facts_mentioning(e)``,
  ``world.value(e, rel)``, ``world.objects(e, rel)``, ``world.subjects(rel, obj)``,
  ``world.holds(fact)``, ``world.false_fact(fact, rng)`` (same subject and relation,
  false object: contradictions, negative pairs, wrong answers),
  ``world.of_kind(kind)``, ``world.entity(name)``.
* Relations: attributes ``type profession birth_year hair temperament size colour age
  famous_for founded_year``; relations ``born_in lives_in works_for located_in
  founded_by parent_of friend_of(symmetric) owns likes dislikes``.
* ``r = Realiser("wiki")`` or ``Realiser("story")`` (two genres: present tense and full
  names vs. past tense narrative):
  ``r.paraphrases(fact)`` (2-5 phrasings with the same meaning: MRPC/QQP/STS-B
  positives), ``r.sentence(fact, variant, tense=, negated=, pronoun=, person=)``,
  ``r.negation(fact)`` (MNLI/RTE contradictions), ``r.question(fact, "yn"|"wh",
  variant)`` with ``r.wh_answer(fact, variant)`` and ``r.n_questions(fact)`` (QNLI,
  QQP), ``r.relative(fact)`` / ``r.predicate(fact)`` (longer, embedded sentences).
  Entailment can also use kinship/employment inferences (``parent_of`` implies the
  same surname; ``works_for`` an org ``located_in`` a place).
* Sentiment (SST-2): ``SENTIMENT["positive"|"negative"]`` word lists and
  ``sentiment_sentence(entity, polarity, rng, style=, negated=, speaker=)``; the
  world's ``likes``/``dislikes`` facts say who holds which opinion.
* Acceptability (CoLA): ``corrupt(sentence, rng) -> (bad_sentence, kind)`` with kinds
  agreement, article, tense, omission, order.
* Graded similarity (STS-B): paraphrase (5) > same subject and relation, other object
  (``false_fact``) > same subject, other relation > unrelated facts (0).
"""

from kdbudget.demo.build import build_world
from kdbudget.demo.corpus import demo_world, write_demo_corpus
from kdbudget.demo.glue import write_demo_glue
from kdbudget.demo.realise import SENTIMENT, Realiser, corrupt, sentiment_sentence
from kdbudget.demo.world import RELATIONS, Entity, Fact, World

__all__ = ["RELATIONS", "SENTIMENT", "Entity", "Fact", "Realiser", "World", "build_world", "corrupt", "demo_world",
           "sentiment_sentence", "write_demo_corpus", "write_demo_glue"]
