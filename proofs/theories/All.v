(** The whole development: every exported theorem, for [Print Assumptions]. *)

Require Export PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Export PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput PrefixTheory.SinglePrefix.
Require Export PrefixTheory.BiasSpan PrefixTheory.Layer PrefixTheory.KVConverse.
Require Export PrefixTheory.HierarchyStrict PrefixTheory.PositionShift.
Require Export PrefixTheory.FinetuneContrast PrefixTheory.DeeperFirstOrder.
Require Export PrefixTheory.DeeperAttention PrefixTheory.Constructions PrefixTheory.Capacity.
Require Export PrefixTheory.Differential.
Require Export PrefixTheory.Recurrent PrefixTheory.Latent PrefixTheory.Sinks.
