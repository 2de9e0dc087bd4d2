"""Test helpers shipped with tinystore, for its own tests and third-party backends."""

from tinystore.testing.storage import LEAF_CASES, StorageTests, assert_leaf_identical

__all__ = ["StorageTests", "LEAF_CASES", "assert_leaf_identical"]
