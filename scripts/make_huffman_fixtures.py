#!/usr/bin/env python3
"""Writes tests/fixtures/huffman_codes.json for tests/ops/test_hierarchical_softmax.cpp.

A line-by-line Python port of word2vec's CreateBinaryTree (word2vec.c, Mikolov
2013), run on a few count lists, some with ties. word2vec first sorts its
vocabulary by count, descending (SortVocab); here that sort is stable on the
class id, so equal counts keep their id order. The tree is then built over the
sorted positions exactly as the C code does: two queues (the leaves, read from
the rarest end, and the new internal nodes, in creation order), a strict `<`
so that a tie takes the internal node, 1e15 as the "no node yet" sentinel, the
second minimum of each merge getting code bit 1.

For each class (in the caller's id order) the fixture stores word2vec's
vocab[a].code[0..codelen) and vocab[a].point[0..codelen): root first, the
points being internal node ids (creation order, so the root is V - 2).

Run (standard library only):  /usr/bin/python3 scripts/make_huffman_fixtures.py
"""
import os

from fixture_util import write_fixture


def create_binary_tree(sorted_counts):
    """word2vec.c CreateBinaryTree over counts already sorted descending."""
    vocab_size = len(sorted_counts)
    count = [0] * (vocab_size * 2 + 1)
    binary = [0] * (vocab_size * 2 + 1)
    parent_node = [0] * (vocab_size * 2 + 1)
    for a in range(vocab_size):
        count[a] = sorted_counts[a]
    for a in range(vocab_size, vocab_size * 2):
        count[a] = int(1e15)
    pos1 = vocab_size - 1
    pos2 = vocab_size
    for a in range(vocab_size - 1):
        # First, find two smallest nodes 'min1, min2'
        if pos1 >= 0:
            if count[pos1] < count[pos2]:
                min1i = pos1
                pos1 -= 1
            else:
                min1i = pos2
                pos2 += 1
        else:
            min1i = pos2
            pos2 += 1
        if pos1 >= 0:
            if count[pos1] < count[pos2]:
                min2i = pos1
                pos1 -= 1
            else:
                min2i = pos2
                pos2 += 1
        else:
            min2i = pos2
            pos2 += 1
        count[vocab_size + a] = count[min1i] + count[min2i]
        parent_node[min1i] = vocab_size + a
        parent_node[min2i] = vocab_size + a
        binary[min2i] = 1
    # Now assign binary code to each vocabulary word
    codes, points = [], []
    for a in range(vocab_size):
        b = a
        code, point = [], []
        while True:
            code.append(binary[b])
            point.append(b)
            b = parent_node[b]
            if b == vocab_size * 2 - 2:
                break
        i = len(code)
        word_code = [0] * i
        word_point = [0] * (i + 1)
        word_point[0] = vocab_size - 2
        for b in range(i):
            word_code[i - b - 1] = code[b]
            word_point[i - b] = point[b] - vocab_size
        codes.append(word_code)
        points.append(word_point[:i])  # point[i] is the leaf itself (negative): unused
    return codes, points


def case(counts):
    order = sorted(range(len(counts)), key=lambda c: -counts[c])  # stable: ties by id
    sorted_codes, sorted_points = create_binary_tree([counts[c] for c in order])
    codes = [None] * len(counts)
    points = [None] * len(counts)
    for position, c in enumerate(order):
        codes[c] = sorted_codes[position]
        points[c] = sorted_points[position]
    return {"counts": counts, "codes": codes, "points": points}


def main():
    count_lists = [
        [5, 3, 2, 1],
        [1, 1],
        [3, 1, 2],
        [1, 1, 1, 1],  # all tied: the internal nodes win every tie
        [10, 7, 7, 3, 3, 3, 1, 0],  # ties and a zero count
        [2, 9, 4, 4, 1, 6, 4, 8, 2, 2, 5],  # unsorted input
        [1000000 // (i + 1) for i in range(40)],  # Zipfian
        [(i * 37) % 11 for i in range(25)],  # many ties, zeros
    ]
    out = {"cases": [case(counts) for counts in count_lists]}
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "huffman_codes.json")
    write_fixture(path, out)


if __name__ == "__main__":
    main()
