"""``match``'s core: class-matched subsets of any image-text corpus (issue 19), as plain Python.

The contract the Beam layer builds on (it wraps these; none of them imports Beam, torch or any
heavy library, and each is tested without Beam):

- :mod:`~imagenet_captions.match.options`: ``MatchRule`` (case, overlaps, multiple, clean), validated
  once (``OptionError``), and ``PRESETS`` that name the papers they follow (``apply_preset``:
  explicit options win).
- :mod:`~imagenet_captions.match.vocabulary`: ``load_vocabulary(names, classes, unique_terms,
  exclude_terms) -> Vocabulary``: sorted wnids, each with its terms, and a digest of them.
- :mod:`~imagenet_captions.match.matcher`: ``Matcher(vocabulary, rule).match_many(captions)``: per
  caption, the ``(wnid, terms)`` pairs it names or a ``Drop`` (``no_caption``, ``no_class``,
  ``several_classes``). Picklable; the automaton is rebuilt lazily where it is unpickled.
- :mod:`~imagenet_captions.match.balance`: per-class targets and the selection of one class's
  candidates (what a GroupByKey on the wnid delivers) in bounded memory; the rest are ``over_quota``.

The same captions, vocabulary and rule give the same outcomes on any machine: docs/match.md states
the rule exactly enough to reimplement, and tests/match holds such a reimplementation.
"""
