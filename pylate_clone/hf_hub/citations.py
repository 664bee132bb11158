"""BibTeX entries cited by every PyLate-format model card."""

SENTENCE_TRANSFORMERS = """
@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084"
}"""

PYLATE = """
@inproceedings{DBLP:conf/cikm/ChaffinS25,
  author    = {Antoine Chaffin and Rapha{\\"{e}}l Sourty},
  title     = {PyLate: Flexible Training and Retrieval for Late Interaction Models},
  booktitle = {Proceedings of the 34th {ACM} International Conference on Information
               and Knowledge Management, {CIKM} 2025, Seoul, Republic of Korea},
  pages     = {6334--6339},
  publisher = {{ACM}},
  year      = {2025},
  url       = {https://github.com/lightonai/pylate},
  doi       = {10.1145/3746252.3761608},
}"""
