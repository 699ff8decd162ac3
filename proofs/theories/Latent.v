(** Multi-head latent attention (DeepSeek-V2/V3, docs/theory.md §5.3): every head's key and
    value come from one latent [c = W_DKV h] per position, each key also carries a RoPE part
    [kR = R_p (W_KR h)] shared by the heads.  Where a latent prefix [(c_p, kR_p)] sits between a
    hidden-state prefix and a per-head KV-prefix, for every size. *)

Require Import Reals Lra Lia.
Require Import PrefixTheory.Sums PrefixTheory.Linear PrefixTheory.KVConverse.
Open Scope R_scope.

(** The layer's maps, any functions: [DKV] (to the latent), [KR p] (to the rotated RoPE key at
    position [p]), [UK h] and [UV h] (head [h]'s content key and value from the latent);
    [kcat] puts a head's content key and the RoPE key one after the other. *)
Definition latent_of (DKV : vec -> vec) (KR : nat -> vec -> vec) (p : nat) (x : vec) : vec * vec :=
  (DKV x, KR p x).
Definition head_key (UK : nat -> vec -> vec) (kcat : vec -> vec -> vec) (h : nat) (l : vec * vec)
  : vec := kcat (UK h (fst l)) (snd l).
Definition head_value (UV : nat -> vec -> vec) (h : nat) (l : vec * vec) : vec := UV h (fst l).

(** prefix ⊆ latent: the keys and values a virtual state's attention input [x] gives every head
    are those of the latent prefix [latent_of p x]. *)
Theorem prefix_as_latent (DKV : vec -> vec) (KR : nat -> vec -> vec) (UK UV : nat -> vec -> vec)
    (kcat : vec -> vec -> vec) (p h : nat) (x : vec) :
  head_key UK kcat h (latent_of DKV KR p x) = kcat (UK h (DKV x)) (KR p x) /\
  head_value UV h (latent_of DKV KR p x) = UV h (DKV x).
Proof. split; reflexivity. Qed.

(** latent ⊆ KV: a latent prefix is the per-head KV-prefix of the keys and values it makes
    (every head, every virtual position). *)
Theorem latent_as_kv (UK UV : nat -> vec -> vec) (kcat : vec -> vec -> vec)
    (lp : nat -> vec * vec) :
  exists k v : nat -> nat -> vec, forall h p,
    k h p = head_key UK kcat h (lp p) /\ v h p = head_value UV h (lp p).
Proof.
  exists (fun h p => head_key UK kcat h (lp p)), (fun h p => head_value UV h (lp p)).
  intros. split; reflexivity.
Qed.

(** latent = hidden-state prefix iff the stacked rows [W_KR; W_DKV] ([dr + dc] rows over
    [d] columns) are independent: every (rotated RoPE key, latent) is then some input's image,
    and otherwise some is none's (an orthogonal rotation [Rm] of the RoPE key, as RoPE's). *)
Theorem latent_converse (d dr dc : nat) (WKR WDKV Rm : mat) :
  orthogonal dr Rm -> orthogonal dr (transpose Rm) ->
  rows_independent (dr + dc) d (stack dr WKR WDKV) <->
  forall kR c : vec, exists x : vec,
    (forall r, (r < dr)%nat -> mv dr Rm (fun e => mv d WKR x e + 0) r = kR r) /\
    (forall r, (r < dc)%nat -> mv d WDKV x r + 0 = c r).
Proof.
  intros HR HRt. exact (kv_converse_rotated d dr dc WKR WDKV Rm (fun _ => 0) (fun _ => 0) HR HRt).
Qed.

(** KV ⊄ latent: the content keys and values of all heads stack [rk + rv] rows over the [dc]
    latent coordinates; with more rows than [dc] some per-head KV-prefix is no latent's image,
    whatever the up-projections. *)
Theorem kv_not_latent (dc rk rv : nat) (UK UV : mat) :
  (dc < rk + rv)%nat ->
  exists k v : vec, ~ kv_reachable dc rk rv UK UV (fun _ => 0) (fun _ => 0) k v.
Proof. apply kv_strictly_wider_when_wide. Qed.

(** KV ⊄ latent, even with a latent as wide as the keys: the heads' RoPE parts are one shared
    vector in a latent prefix, while a per-head KV-prefix may give two heads different ones. *)
Theorem shared_rope_witness (dr : nat) :
  (0 < dr)%nat ->
  exists k0 k1 : vec, forall kR : vec,
    ~ ((forall r, (r < dr)%nat -> k0 r = kR r) /\ (forall r, (r < dr)%nat -> k1 r = kR r)).
Proof.
  intro H. exists (fun _ => 0), (fun _ => 1). intros kR [H0 H1].
  specialize (H0 0%nat H). specialize (H1 0%nat H). lra.
Qed.
