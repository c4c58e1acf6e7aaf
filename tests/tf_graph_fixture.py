"""Small frozen TensorFlow graphs with the real node names of Essentia's models, written as GraphDef protobufs.

The real Discogs-EffNet backbone (and some heads) cannot be fetched here; these stand-ins have the same input
and output nodes so Essentia's own predictors run them, and their outputs are known in closed form.
No TensorFlow import is needed: the few GraphDef fields used are declared from TensorFlow's .proto numbers.
"""
from __future__ import annotations

import numpy as np


def _graphdef_classes():
    """Message classes for the few GraphDef fields used here (field numbers of TensorFlow's .proto files)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="mirflow_test_graph.proto", package="mtg", syntax="proto2")

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = f".mtg.{type_name}"

    message("Dim", ("size", 1, F.TYPE_INT64, False, None))
    message("Shape", ("dim", 2, F.TYPE_MESSAGE, True, "Dim"), ("unknown_rank", 3, F.TYPE_BOOL, False, None))
    message("Tensor", ("dtype", 1, F.TYPE_INT32, False, None), ("tensor_shape", 2, F.TYPE_MESSAGE, False, "Shape"),
            ("tensor_content", 4, F.TYPE_BYTES, False, None))
    message("ListValue", ("type", 6, F.TYPE_INT32, True, None))
    message("AttrValue", ("list", 1, F.TYPE_MESSAGE, False, "ListValue"), ("b", 5, F.TYPE_BOOL, False, None),
            ("type", 6, F.TYPE_INT32, False, None), ("shape", 7, F.TYPE_MESSAGE, False, "Shape"),
            ("tensor", 8, F.TYPE_MESSAGE, False, "Tensor"))
    message("AttrEntry", ("key", 1, F.TYPE_STRING, False, None), ("value", 2, F.TYPE_MESSAGE, False, "AttrValue"))
    message("NodeDef", ("name", 1, F.TYPE_STRING, False, None), ("op", 2, F.TYPE_STRING, False, None),
            ("input", 3, F.TYPE_STRING, True, None), ("attr", 5, F.TYPE_MESSAGE, True, "AttrEntry"))
    message("GraphDef", ("node", 1, F.TYPE_MESSAGE, True, "NodeDef"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mtg.{name}"))
            for name in ("GraphDef", "AttrValue", "Tensor", "Shape", "Dim", "ListValue")}


class Graph:
    """Builds a frozen TensorFlow graph (float32 ops only) that Essentia's TensorFlow runtime can import."""

    FLOAT, INT32 = 1, 3

    def __init__(self):
        self.c = _graphdef_classes()
        self.graph = self.c["GraphDef"]()

    def node(self, name, op, inputs=(), **attrs):
        n = self.graph.node.add(name=name, op=op)
        n.input.extend(inputs)
        for key, value in attrs.items():
            n.attr.add(key=key, value=value)
        return name

    def t(self, dtype=FLOAT):
        return self.c["AttrValue"](type=dtype)

    def placeholder(self, name):
        return self.node(name, "Placeholder", dtype=self.t(), shape=self.c["AttrValue"](
            shape=self.c["Shape"](unknown_rank=True)))

    def const(self, name, array, dtype=FLOAT):
        arr = np.ascontiguousarray(array, dtype=np.float32 if dtype == self.FLOAT else np.int32)
        shape = self.c["Shape"](dim=[self.c["Dim"](size=s) for s in arr.shape])
        tensor = self.c["Tensor"](dtype=dtype, tensor_shape=shape, tensor_content=arr.tobytes())
        return self.node(name, "Const", value=self.c["AttrValue"](tensor=tensor), dtype=self.t(dtype))

    def matmul(self, name, a, b):
        return self.node(name, "MatMul", [a, b], T=self.t())

    def unary(self, name, op, a):
        return self.node(name, op, [a], T=self.t())

    def mean_over_axis1(self, name, a):
        axes = self.const(f"{name}_axes", np.array([1]), self.INT32)
        return self.node(name, "Mean", [a, axes], T=self.t(), Tidx=self.t(self.INT32),
                         keep_dims=self.c["AttrValue"](b=False))

    def outputs(self, name, *inputs):
        """A node whose outputs name:0, name:1... are ``inputs`` (like a SavedModel's PartitionedCall)."""
        return self.node(name, "IdentityN", list(inputs),
                         T=self.c["AttrValue"](list=self.c["ListValue"](type=[self.FLOAT] * len(inputs))))

    def save(self, path):
        path.write_bytes(self.graph.SerializeToString())
        return str(path)


def standin_effnet(path, w_emb):
    """Stand-in for discogs-effnet-bs64-1: mel patch [N,128,96] -> time mean -> @ w_emb [96,1280].

    Node names are the real ones: input ``serving_default_melspectrogram``, outputs
    ``PartitionedCall:0`` (style activations, here a sigmoid of another projection) and
    ``PartitionedCall:1`` (embeddings).
    """
    g = Graph()
    x = g.mean_over_axis1("time_mean", g.placeholder("serving_default_melspectrogram"))
    emb = g.matmul("embedding", x, g.const("w_emb", w_emb))
    act = g.unary("act", "Sigmoid", g.matmul("logits", x, g.const("w_act", w_emb[:, :400])))
    g.outputs("PartitionedCall", act, emb)
    return g.save(path)


def standin_head(path, w, input_node, output_node, activation):
    """Stand-in classification head: embeddings [N,D] @ w -> activation, with the given node names."""
    g = Graph()
    logits = g.matmul("logits", g.placeholder(input_node), g.const("w", w))
    if ":" in output_node:
        name, _, index = output_node.partition(":")
        assert index == "0"
        g.outputs(name, g.unary("act", activation, logits))
    else:
        g.unary(output_node, activation, logits)
    return g.save(path)
