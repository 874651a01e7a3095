"""Fast word and character n-gram TF-IDF features for short social texts.

``StageFeatures`` gives the same kind of features as scikit-learn's
``TfidfVectorizer`` with word 1-2-grams side by side with ``char_wb``
n-grams, but computes them an order of magnitude faster at prediction time:

- character n-grams of ``char_wb`` never cross a word boundary, so a
  document's character n-gram counts are the sum of its words' counts. At
  ``fit`` the n-grams of every vocabulary word are precomputed into a sparse
  word x n-gram matrix ``W``; at ``transform`` the character block is one
  sparse product ``U @ W`` of the word-count matrix ``U``. Only words never
  seen in training are analysed one by one (with a bounded cache);
- tokenising and vocabulary look-ups run in C (``re.findall``, ``map`` over
  ``dict.get``), and word bigrams are matched as integer pairs with
  ``numpy.searchsorted``, for a whole batch at once.

Each block (words, bigrams, characters) gets sublinear TF, smoothed IDF and
L2 normalisation, as ``TfidfVectorizer(sublinear_tf=True)`` would.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

TOKEN_RE = re.compile(r"\w+")
OOV_CACHE_SIZE = 200_000


def char_ngrams(word: str, low: int, high: int) -> list[str]:
    """The ``char_wb`` n-grams of one word (padded with a space on each side)."""
    padded = f" {word} "
    grams = []
    for n in range(low, high + 1):
        if n > len(padded):
            break
        grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


def _tfidf_rows(counts: sp.csr_matrix, idf: np.ndarray, weight: float) -> sp.csr_matrix:
    """Sublinear TF x IDF, each row scaled to length ``weight`` -- in place, on the data array."""
    data = counts.data.astype(np.float32, copy=False)
    np.log(data, out=data)
    data += 1.0
    data *= idf[counts.indices]
    squares = np.zeros(counts.shape[0], dtype=np.float64)
    nnz = np.diff(counts.indptr)
    rows = np.nonzero(nnz)[0]
    if len(rows):
        squares[rows] = np.add.reduceat(data.astype(np.float64) ** 2, counts.indptr[rows])
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0
    data *= np.repeat((weight / norms).astype(np.float32), nnz)
    return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)


def _idf(counts: sp.csr_matrix, n_docs: int) -> np.ndarray:
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1 + n_docs) / (1 + df)) + 1).astype(np.float32)


class StageFeatures(TransformerMixin, BaseEstimator):
    """Word 1-2-gram and character n-gram TF-IDF, computed in batches.

    ``tokenizer`` turns a text into its words (default: lower case, ``\\w+``);
    ``char_ngram_range`` and ``char_min_df`` select the character n-grams;
    ``bigram_min_df`` the word pairs.
    """

    def __init__(
        self,
        tokenizer: Callable[[str], list[str]] | None = None,
        char_ngram_range: tuple[int, int] = (2, 5),
        char_min_df: int = 2,
        bigram_min_df: int = 1,
        word_weight: float = 1.0,
        char_weight: float = 1.0,
    ) -> None:
        self.tokenizer = tokenizer
        self.char_ngram_range = char_ngram_range
        self.char_min_df = char_min_df
        self.bigram_min_df = bigram_min_df
        self.word_weight = word_weight
        self.char_weight = char_weight

    # --- persistence: the look-up cache is rebuilt, never saved -----------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_oov_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- tokenising --------------------------------------------------------
    def _tokens(self, texts: Iterable[str]) -> list[list[str]]:
        if self.tokenizer is not None:
            return list(map(self.tokenizer, texts))
        return [TOKEN_RE.findall(t.lower()) for t in texts]

    def fit(self, X: Sequence[str], y: Any = None) -> StageFeatures:
        docs = self._tokens(X)
        low, high = self.char_ngram_range
        words = sorted({w for doc in docs for w in doc})
        self.vocabulary_ = {w: i for i, w in enumerate(words)}
        n_words = len(words)

        pair_df: Counter[int] = Counter()
        gram_df: Counter[str] = Counter()
        word_grams = {w: char_ngrams(w, low, high) for w in words}
        for doc in docs:
            ids = [self.vocabulary_[w] for w in doc]
            pair_df.update({a * n_words + b for a, b in zip(ids, ids[1:], strict=False)})
            gram_df.update({g for w in set(doc) for g in word_grams[w]})
        self.bigram_keys_ = np.array(
            sorted(k for k, c in pair_df.items() if c >= self.bigram_min_df), dtype=np.int64
        )
        grams = sorted(g for g, c in gram_df.items() if c >= self.char_min_df)
        self.char_vocabulary_ = {g: i for i, g in enumerate(grams)}

        rows, cols = [], []
        for w, i in self.vocabulary_.items():
            for g in word_grams[w]:
                j = self.char_vocabulary_.get(g)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        self.word_chars_ = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_words, len(grams))
        )
        self.word_chars_.sum_duplicates()

        unigrams, bigrams, chars = self._counts(docs)
        n = len(docs)
        self.idf_words_ = _idf(unigrams, n)
        self.idf_bigrams_ = _idf(bigrams, n)
        self.idf_chars_ = _idf(chars, n)
        return self

    def _oov_char_ids(self, word: str) -> list[int]:
        cache = self.__dict__.setdefault("_oov_cache", {})
        found = cache.get(word)
        if found is None:
            low, high = self.char_ngram_range
            get = self.char_vocabulary_.get
            found = [j for j in map(get, char_ngrams(word, low, high)) if j is not None]
            if len(cache) < OOV_CACHE_SIZE:
                cache[word] = found
        return found

    def _counts(self, docs: list[list[str]]) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
        n = len(docs)
        n_words = len(self.vocabulary_)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n)
        flat = list(chain.from_iterable(docs))
        ids = np.fromiter(map(self.vocabulary_.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        doc_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
        known = ids >= 0

        unigrams = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (doc_of[known], ids[known])), shape=(n, n_words)
        )
        unigrams.sum_duplicates()

        pairs = known[1:] & known[:-1] & (doc_of[1:] == doc_of[:-1])
        keys = ids[:-1][pairs] * n_words + ids[1:][pairs]
        pair_docs = doc_of[:-1][pairs]
        n_bigrams = len(self.bigram_keys_)
        if n_bigrams and len(keys):
            pos = np.searchsorted(self.bigram_keys_, keys)
            pos[pos >= n_bigrams] = 0
            hit = self.bigram_keys_[pos] == keys
            bigrams = sp.csr_matrix(
                (np.ones(int(hit.sum()), dtype=np.float32), (pair_docs[hit], pos[hit])), shape=(n, n_bigrams)
            )
            bigrams.sum_duplicates()
        else:
            bigrams = sp.csr_matrix((n, n_bigrams), dtype=np.float32)

        chars = sp.csr_matrix(unigrams @ self.word_chars_)
        unknown = np.nonzero(~known)[0]
        if len(unknown):
            rows: list[int] = []
            cols: list[int] = []
            for position in unknown.tolist():
                found = self._oov_char_ids(flat[position])
                rows.extend(repeat(int(doc_of[position]), len(found)))
                cols.extend(found)
            if rows:
                extra = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=chars.shape)
                chars = sp.csr_matrix(chars + extra)
        return unigrams, bigrams, chars

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        unigrams, bigrams, chars = self._counts(self._tokens(X))
        blocks = [
            _tfidf_rows(unigrams, self.idf_words_, self.word_weight),
            _tfidf_rows(bigrams, self.idf_bigrams_, self.word_weight),
            _tfidf_rows(chars, self.idf_chars_, self.char_weight),
        ]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        words = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        n_words = len(words)
        pairs = [f"{words[k // n_words]} {words[k % n_words]}" for k in self.bigram_keys_.tolist()]
        chars = sorted(self.char_vocabulary_, key=self.char_vocabulary_.__getitem__)
        return np.array([*words, *pairs, *(f"c:{g}" for g in chars)], dtype=object)


def _char_rows(chars: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Character block: TF x IDF, divided by sqrt(sum of count x IDF^2).

    That divisor equals the L2 norm when every n-gram occurs once (short
    texts) and, unlike the L2 norm, is a sum over words -- which is what lets
    ``StageClassifier`` score this block from per-word vectors.
    """
    data = chars.data.astype(np.float32) * idf[chars.indices]
    squares = np.asarray(chars.multiply(idf[np.newaxis, :] ** 2).sum(axis=1)).ravel()
    squares[squares == 0] = 1.0
    data /= np.repeat(np.sqrt(squares).astype(np.float32), np.diff(chars.indptr))
    return sp.csr_matrix((data, chars.indices, chars.indptr), shape=chars.shape)


class StageClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression over ``StageFeatures``, scored fast at prediction.

    ``fit`` builds the explicit feature matrix (word 1-2-grams with
    sublinear TF-IDF, character n-grams with ``_char_rows``) and fits a
    multinomial logistic regression. It then folds the character block's
    coefficients into a word x class matrix ``P`` and a word vector ``q``,
    so that at prediction the character block adds ``(U @ P) / sqrt(U @ q)``
    to the scores -- the same numbers as the explicit product, without ever
    building the character matrix. Words unseen in training get their
    vectors from their own n-grams (cached).
    """

    def __init__(
        self,
        tokenizer: Callable[[str], list[str]] | None = None,
        char_ngram_range: tuple[int, int] = (2, 5),
        char_min_df: int = 2,
        C: float = 16.0,  # noqa: N803 - scikit-learn's name
        class_weight: str | None = "balanced",
        max_iter: int = 3000,
        random_state: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.char_ngram_range = char_ngram_range
        self.char_min_df = char_min_df
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_oov_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _explicit(self, counts: tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]) -> sp.csr_matrix:
        f = self.features_
        unigrams, bigrams, chars = counts
        return sp.hstack(
            [
                _tfidf_rows(unigrams, f.idf_words_, 1.0),
                _tfidf_rows(bigrams, f.idf_bigrams_, 1.0),
                _char_rows(chars, f.idf_chars_),
            ],
            format="csr",
            dtype=np.float32,
        )

    def fit(self, X: Sequence[str], y: Sequence[str]) -> StageClassifier:
        from sklearn.linear_model import LogisticRegression

        self.features_ = StageFeatures(
            tokenizer=self.tokenizer, char_ngram_range=self.char_ngram_range, char_min_df=self.char_min_df
        ).fit(X)
        matrix = self._explicit(self.features_._counts(self.features_._tokens(X)))
        self.model_ = LogisticRegression(
            C=self.C, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state
        ).fit(matrix, y)
        self.classes_ = self.model_.classes_
        f = self.features_
        n_words, n_bigrams = len(f.vocabulary_), len(f.bigram_keys_)
        coef = self.model_.coef_.astype(np.float32)
        if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        self.coef_words_ = np.ascontiguousarray(coef[:, :n_words].T)
        self.coef_bigrams_ = np.ascontiguousarray(coef[:, n_words : n_words + n_bigrams].T)
        self.coef_chars_ = np.ascontiguousarray(coef[:, n_words + n_bigrams :].T)  # n_chars x classes
        weighted = self.coef_chars_ * f.idf_chars_[:, np.newaxis]
        self.word_char_scores_ = np.asarray(f.word_chars_ @ weighted, dtype=np.float32)  # P
        self.word_char_norms_ = np.asarray(
            f.word_chars_ @ (f.idf_chars_.astype(np.float64) ** 2)
        ).ravel()  # q
        intercept = self.model_.intercept_.astype(np.float32)
        self.intercept_ = intercept if len(intercept) > 1 else np.array([-intercept[0] / 2, intercept[0] / 2])
        return self

    def _oov_vectors(self, word: str) -> tuple[np.ndarray, float]:
        cache = self.__dict__.setdefault("_oov_cache", {})
        found = cache.get(word)
        if found is None:
            ids = self.features_._oov_char_ids(word)
            idf = self.features_.idf_chars_
            if ids:
                index = np.asarray(ids)
                found = (
                    (self.coef_chars_[index] * idf[index, np.newaxis]).sum(axis=0),
                    float((idf[index] ** 2).sum()),
                )
            else:
                found = (np.zeros(len(self.classes_), dtype=np.float32), 0.0)
            if len(cache) < OOV_CACHE_SIZE:
                cache[word] = found
        return found

    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        f = self.features_
        docs = f._tokens(X)
        n = len(docs)
        n_words = len(f.vocabulary_)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n)
        flat = list(chain.from_iterable(docs))
        ids = np.fromiter(map(f.vocabulary_.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        doc_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
        known = ids >= 0
        unigrams = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (doc_of[known], ids[known])), shape=(n, n_words)
        )
        unigrams.sum_duplicates()
        # Character block: per-word score vectors, summed and normalised.
        char_scores = np.asarray(unigrams @ self.word_char_scores_, dtype=np.float64)
        char_norms = np.asarray(unigrams @ self.word_char_norms_, dtype=np.float64).ravel()
        unknown = np.nonzero(~known)[0]
        for position in unknown.tolist():
            vector, norm = self._oov_vectors(flat[position])
            row = int(doc_of[position])
            char_scores[row] += vector
            char_norms[row] += norm
        char_norms[char_norms == 0] = 1.0
        scores = char_scores / np.sqrt(char_norms)[:, np.newaxis]
        # Word blocks: explicit, they are small.
        pairs = known[1:] & known[:-1] & (doc_of[1:] == doc_of[:-1])
        keys = ids[:-1][pairs] * n_words + ids[1:][pairs]
        pair_docs = doc_of[:-1][pairs]
        n_bigrams = len(f.bigram_keys_)
        if n_bigrams and len(keys):
            pos = np.searchsorted(f.bigram_keys_, keys)
            pos[pos >= n_bigrams] = 0
            hit = f.bigram_keys_[pos] == keys
            bigrams = sp.csr_matrix(
                (np.ones(int(hit.sum()), dtype=np.float32), (pair_docs[hit], pos[hit])), shape=(n, n_bigrams)
            )
            bigrams.sum_duplicates()
        else:
            bigrams = sp.csr_matrix((n, n_bigrams), dtype=np.float32)
        scores += _tfidf_rows(unigrams, f.idf_words_, 1.0) @ self.coef_words_
        scores += _tfidf_rows(bigrams, f.idf_bigrams_, 1.0) @ self.coef_bigrams_
        return scores + self.intercept_

    def calibrate(self, X: Sequence[str], y: Sequence[str], folds: int = 5) -> StageClassifier:
        """Temperature scaling: one divisor for the scores, fitted on out-of-fold predictions.

        Logistic regression with weak regularisation is over-confident; the
        temperature that minimises the log-loss of cross-validated scores on
        the training data makes ``predict_proba`` honest without changing
        which label wins.
        """
        from scipy.optimize import minimize_scalar
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        texts, labels = list(X), np.asarray(y)
        scores = np.zeros((len(texts), len(self.classes_)))
        for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(
            texts, labels
        ):
            model = clone(self).fit([texts[i] for i in train_idx], labels[train_idx])
            scores[test_idx] = model.decision_function([texts[i] for i in test_idx])
        truth = np.searchsorted(self.classes_, labels)

        def nll(temperature: float) -> float:
            z = scores / temperature
            z = z - z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-log_p[np.arange(len(truth)), truth].mean())

        self.temperature_ = float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        scores = self.decision_function(X) / getattr(self, "temperature_", 1.0)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def explicit_predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """The same probabilities through the explicit feature matrix (for tests)."""
        return self.model_.predict_proba(self._explicit(self.features_._counts(self.features_._tokens(X))))
