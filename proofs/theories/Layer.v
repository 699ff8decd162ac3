(** One attention layer with any number of heads, and the four context methods as its
    inputs: a hard prompt (tokens), a soft prompt (free layer-0 embeddings), a hidden-state
    prefix (the state of each virtual position at this layer's input) and a KV-prefix (free
    keys and values per head).  Every map is a parameter, so the layer covers linear
    projections with biases, RoPE or ALiBi (maps that depend on the position), grouped
    keys/values (maps that depend on the head), pre-LN (the norm before attention) and any
    output map (W_O, residual, MLP, post-LN). *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.Softmax.
Require Import PrefixTheory.RelativeAttention PrefixTheory.ConvexOutput.
Open Scope R_scope.

Record layer := mk_layer {
  heads : nat;                        (** number of heads H *)
  dk : nat;                           (** query/key dimension of a head *)
  temp : R;                           (** inverse temperature, with the 1/sqrt(k) scale *)
  norm : vec -> vec;                  (** pre-attention norm (LayerNorm pre-LN, identity otherwise) *)
  query : nat -> nat -> vec -> vec;   (** head, position, attention input -> query *)
  key : nat -> nat -> vec -> vec;     (** head, position, attention input -> key *)
  value : nat -> vec -> vec;          (** head, attention input -> value *)
  post : vec -> (nat -> vec) -> vec   (** state and head outputs -> next state *)
}.

(** What a layer reads from the [np] virtual positions: a key and a value per head. *)
Record kv := mk_kv { np : nat; kp : nat -> nat -> vec; vp : nat -> nat -> vec }.

Definition no_context : kv := mk_kv 0 (fun _ _ _ => 0) (fun _ _ _ => 0).

(** Content: states [x j] at positions [pos j]; a content query sees the virtual positions
    and its first [nv] content keys ([nv = i + 1] causal, [nv = n] bidirectional). *)
Definition logit (L : layer) (q k : vec) : R := temp L * dot (dk L) q k.

Definition prefix_logits (L : layer) (h : nat) (c : kv) (x : nat -> vec) (pos : nat -> nat)
    (i : nat) : nat -> R :=
  fun p => logit L (query L h (pos i) (norm L (x i))) (kp c h p).

Definition content_logits (L : layer) (h : nat) (x : nat -> vec) (pos : nat -> nat)
    (i : nat) : nat -> R :=
  fun j => logit L (query L h (pos i) (norm L (x i))) (key L h (pos j) (norm L (x j))).

Definition content_values (L : layer) (h : nat) (x : nat -> vec) : nat -> vec :=
  fun j => value L h (norm L (x j)).

Definition head_out (L : layer) (c : kv) (x : nat -> vec) (pos : nat -> nat) (nv i h : nat) : vec :=
  head_pt (np c) nv (prefix_logits L h c x pos i) (content_logits L h x pos i)
          (vp c h) (content_values L h x).

Definition layer_out (L : layer) (c : kv) (x : nat -> vec) (pos : nat -> nat) (nv i : nat) : vec :=
  post L (x i) (head_out L c x pos nv i).

(** The attention weight of head [h] from content query [i] to content key [j]. *)
Definition content_weight (L : layer) (c : kv) (x : nat -> vec) (pos : nat -> nat)
    (nv i h j : nat) : R :=
  weight_pt (np c) nv (prefix_logits L h c x pos i) (content_logits L h x pos i) (np c + j).

(** The four context methods.  Virtual position [p] sits at position [p]; [E] embeds tokens
    and [P] gives the virtual positions' position codes. *)
Inductive context :=
  | Hard (n_p : nat) (toks : nat -> nat)
  | Soft (n_p : nat) (e : nat -> vec)
  | Prefix (n_p : nat) (s : nat -> vec)
  | KV (n_p : nat) (k v : nat -> nat -> vec).

(** A hidden state [s] enters attention through the layer's norm and its key/value maps. *)
Definition kv_of_states (L : layer) (n_p : nat) (s : nat -> vec) : kv :=
  mk_kv n_p (fun h p => key L h p (norm L (s p))) (fun h p => value L h (norm L (s p))).

Definition to_kv (L : layer) (E P : nat -> vec) (c : context) : kv :=
  match c with
  | Hard n_p toks => kv_of_states L n_p (fun p => vadd (E (toks p)) (P p))
  | Soft n_p e => kv_of_states L n_p (fun p => vadd (e p) (P p))
  | Prefix n_p s => kv_of_states L n_p s
  | KV n_p k v => mk_kv n_p k v
  end.

Definition run (L : layer) (E P : nat -> vec) (c : context) (x : nat -> vec)
    (pos : nat -> nat) (nv i : nat) : vec :=
  layer_out L (to_kv L E P c) x pos nv i.

(** * hierarchy, one layer: each method is an instance of the next wider one *)

Theorem hard_as_soft (L : layer) (E P : nat -> vec) (n_p : nat) (toks : nat -> nat) :
  forall x pos nv i,
    run L E P (Hard n_p toks) x pos nv i = run L E P (Soft n_p (fun p => E (toks p))) x pos nv i.
Proof. reflexivity. Qed.

Theorem soft_as_prefix (L : layer) (E P : nat -> vec) (n_p : nat) (e : nat -> vec) :
  forall x pos nv i,
    run L E P (Soft n_p e) x pos nv i = run L E P (Prefix n_p (fun p => vadd (e p) (P p))) x pos nv i.
Proof. reflexivity. Qed.

Theorem prefix_as_kv (L : layer) (E P : nat -> vec) (n_p : nat) (s : nat -> vec) :
  forall x pos nv i,
    run L E P (Prefix n_p s) x pos nv i =
    run L E P (KV n_p (fun h p => key L h p (norm L (s p)))
                      (fun h p => value L h (norm L (s p)))) x pos nv i.
Proof. reflexivity. Qed.

(** * relative attention and the output decomposition, per head of the layer, for every
      context method (the layer-level form of [relative_attention] and [convex_output]) *)

Theorem layer_relative_attention (L : layer) (E P : nat -> vec) (c : context)
    (x : nat -> vec) (pos : nat -> nat) (nv i h j : nat) :
  (0 < nv)%nat -> (j < nv)%nat ->
  let k := to_kv L E P c in
  content_weight L k x pos nv i h j =
  content_weight L no_context x pos nv i h j *
    (1 - prefix_mass (np k) nv (prefix_logits L h k x pos i) (content_logits L h x pos i)).
Proof.
  intros Hnv Hj k. unfold content_weight.
  rewrite relative_attention by assumption. f_equal.
  simpl. rewrite weight_pt_0. reflexivity.
Qed.

(** pre_ln: with a norm before attention, a hidden-state prefix [s] acts through
    [norm s]: its keys are [key (norm s)], its values [value (norm s)], and the output of
    every head is [sum_p A^pt_p value (norm s_p) + (1 - m) t] with [t] the output without
    context (content at the same positions).  [norm] is any map: LayerNorm, RMSNorm, or
    the identity (post-LN and no-norm layers). *)
Theorem pre_ln (L : layer) (n_p : nat) (s : nat -> vec) (x : nat -> vec) (pos : nat -> nat)
    (nv i h : nat) (c : nat) :
  (0 < nv)%nat ->
  let k := kv_of_states L n_p s in
  (forall p, kp k h p = key L h p (norm L (s p))) /\
  (forall p, vp k h p = value L h (norm L (s p))) /\
  head_out L k x pos nv i h c =
    sum n_p (fun p => weight_pt n_p nv (prefix_logits L h k x pos i) (content_logits L h x pos i) p
                      * value L h (norm L (s p)) c)
    + (1 - prefix_mass n_p nv (prefix_logits L h k x pos i) (content_logits L h x pos i))
      * head_out L no_context x pos nv i h c.
Proof.
  intros Hnv k. split; [reflexivity |]. split; [reflexivity |].
  unfold head_out at 1. rewrite convex_output by exact Hnv. unfold bias. simpl.
  f_equal. unfold head_out, head_pt, head. simpl np. rewrite attend_0. reflexivity.
Qed.

(** LayerNorm over [d] coordinates, one admissible [norm] above. *)
Definition layernorm (d : nat) (eps : R) (gamma beta : vec) (x : vec) : vec :=
  let mu := sum d x / INR d in
  let var := sum d (fun c => (x c - mu) * (x c - mu)) / INR d in
  fun c => (x c - mu) / sqrt (var + eps) * gamma c + beta c.

(** * soft prompt as prefix in every layer of a deep model

    A model of [L] blocks acting on the whole sequence: [F l] maps the states of all
    positions at layer [l] (the [np] virtual positions first) to those at layer [l+1]; it is
    any function (attention, MLP, norms; causal or bidirectional) that reads its input
    pointwise.  A soft prompt's states evolve through the blocks; a prefix overrides the
    virtual positions' states at every layer. *)

Definition extensional (F : nat -> (nat -> vec) -> (nat -> vec)) : Prop :=
  forall l X Y, (forall i c, X i c = Y i c) -> forall i c, F l X i c = F l Y i c.

Definition override (n_p : nat) (s X : nat -> vec) : nat -> vec :=
  fun i => if Nat.ltb i n_p then s i else X i.

Fixpoint soft_run (F : nat -> (nat -> vec) -> (nat -> vec)) (Y0 : nat -> vec) (l : nat)
    : nat -> vec :=
  match l with
  | O => Y0
  | S l' => F l' (soft_run F Y0 l')
  end.

Fixpoint prefix_run (F : nat -> (nat -> vec) -> (nat -> vec)) (n_p : nat)
    (s : nat -> nat -> vec) (X0 : nat -> vec) (l : nat) : nat -> vec :=
  match l with
  | O => override n_p (s O) X0
  | S l' => override n_p (s l) (F l' (prefix_run F n_p s X0 l'))
  end.

(** The prefix made of the soft prompt's own states at every layer reproduces every state
    of the soft-prompted run, at every layer (per input: in a bidirectional model the
    states depend on the content). *)
Theorem soft_as_prefix_deep (F : nat -> (nat -> vec) -> (nat -> vec)) (n_p : nat)
    (e : nat -> vec) (X0 : nat -> vec) :
  extensional F ->
  let Y0 := override n_p e X0 in
  let s := fun l => soft_run F Y0 l in
  forall l i c, prefix_run F n_p s X0 l i c = soft_run F Y0 l i c.
Proof.
  intros HF Y0 s l. induction l as [| l IH]; intros i c; simpl; unfold override, s.
  - simpl. unfold Y0, override. destruct (Nat.ltb i n_p); reflexivity.
  - destruct (Nat.ltb_spec i n_p); [reflexivity |].
    apply HF. exact IH.
Qed.

(** A block is causal when position [i] reads only positions [<= i]. *)
Definition causal (F : nat -> (nat -> vec) -> (nat -> vec)) : Prop :=
  forall l X Y i, (forall j c, (j <= i)%nat -> X j c = Y j c) -> forall c, F l X i c = F l Y i c.

(** In a causal model the soft prompt's virtual states never read the content, so ONE
    prefix reproduces the soft prompt on every input. *)
Theorem soft_prefix_universal_causal (F : nat -> (nat -> vec) -> (nat -> vec)) (n_p : nat)
    (e : nat -> vec) (X0 X1 : nat -> vec) :
  causal F ->
  forall l p c, (p < n_p)%nat ->
    soft_run F (override n_p e X0) l p c = soft_run F (override n_p e X1) l p c.
Proof.
  intros HF l. induction l as [| l IH]; intros p c Hp; simpl.
  - unfold override. destruct (Nat.ltb_spec p n_p); [reflexivity | lia].
  - apply HF. intros j c' Hj. apply IH. lia.
Qed.
