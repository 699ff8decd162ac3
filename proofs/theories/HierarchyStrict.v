(** hierarchy_strict: the inclusions of the hierarchy are strict (witnesses).

    - soft prompt not in hard prompt: for EVERY vocabulary size [V], embedding [E], position
      codes [P] and content, a one-position soft prompt whose layer output differs from that
      of every one of the [V] one-token hard prompts (on a one-layer model that averages).
    - prefix not in soft prompt: a two-layer causal residual model and a prefix whose content
      states no soft prompt reproduces (the soft prompt's deeper states are functions of its
      layer-0 state, the prefix sets them freely).
    - KV-prefix not in prefix: [kv_converse_witness]. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.ConvexOutput PrefixTheory.Layer.
Open Scope R_scope.

(** One head, zero-dimensional queries and keys (every logit 0: the head averages), values
    and output the attention input itself. *)
Definition avg_layer : layer :=
  mk_layer 1 0 1 (fun x => x) (fun _ _ x => x) (fun _ _ x => x) (fun _ x => x) (fun _ a => a 0%nat).

(** With one virtual position whose state is [s] and one content token, the output is the
    average of the two states (coordinate 0). *)
Lemma avg_layer_run (E P : nat -> vec) (c : context) (x : nat -> vec) (pos : nat -> nat)
    (s : nat -> vec) :
  to_kv avg_layer E P c = kv_of_states avg_layer 1 s ->
  run avg_layer E P c x pos 1 0 0%nat = (s 0%nat 0%nat + x 0%nat 0%nat) / 2.
Proof.
  intro Hc. unfold run. rewrite Hc. unfold layer_out. simpl post.
  unfold head_out, head_pt. simpl np.
  rewrite (attend_uniform 2 (1 * 0)) by (lia || (intros j Hj; unfold cat;
    destruct (Nat.ltb j 1); reflexivity)).
  simpl. unfold cat. simpl. field.
Qed.

Theorem soft_not_hard (V : nat) (E P : nat -> vec) (x : nat -> vec) (pos : nat -> nat) :
  exists e : nat -> vec, forall tok, (tok < V)%nat ->
    run avg_layer E P (Soft 1 e) x pos 1 0 0%nat <>
    run avg_layer E P (Hard 1 (fun _ => tok)) x pos 1 0 0%nat.
Proof.
  set (big := fun c => 1 + sum V (fun t => Rabs (E t c))).
  exists (fun _ c => big c). intros tok Htok.
  rewrite (avg_layer_run E P (Soft 1 (fun _ c => big c)) x pos
             (fun p => vadd big (P p))) by reflexivity.
  rewrite (avg_layer_run E P (Hard 1 (fun _ => tok)) x pos
             (fun p => vadd (E tok) (P p))) by reflexivity.
  unfold vadd. intro H.
  assert (Habs : Rabs (E tok 0%nat) <= sum V (fun t => Rabs (E t 0%nat)))
    by (apply (sum_term_le V (fun t => Rabs (E t 0%nat))); [intros; apply Rabs_pos | exact Htok]).
  pose proof (Rle_abs (E tok 0%nat)). unfold big in H. cbv beta in H. lra.
Qed.

(** A causal block: residual plus a head that averages the positions up to the query. *)
Definition avg_block : nat -> (nat -> vec) -> (nat -> vec) :=
  fun _ X i c => X i c + attend (S i) (fun _ => 0) X c.

Lemma avg_block_eq (l : nat) (X : nat -> vec) (i c : nat) :
  avg_block l X i c = X i c + sum (S i) (fun j => X j c) / INR (S i).
Proof. unfold avg_block. rewrite (attend_uniform (S i) 0) by (lia || reflexivity). reflexivity. Qed.

Definition witness_prefix : nat -> nat -> vec :=
  fun l _ _ => if Nat.eqb l 1 then 1 else 0.

Theorem prefix_not_soft (e : nat -> vec) :
  let X0 := fun (_ : nat) (_ : nat) => 0 in
  ~ (forall l, (l <= 2)%nat ->
       prefix_run avg_block 1 witness_prefix X0 l 1%nat 0%nat =
       soft_run avg_block (override 1 e X0) l 1%nat 0%nat).
Proof.
  intros X0 H.
  pose proof (H 1%nat ltac:(lia)) as H1. pose proof (H 2%nat ltac:(lia)) as H2.
  simpl in H1, H2. unfold avg_block, attend, softmax, Z, override, witness_prefix, X0 in H1, H2.
  simpl in H1, H2. rewrite exp_0 in H1, H2.
  field_simplify in H1. field_simplify in H2. lra.
Qed.
