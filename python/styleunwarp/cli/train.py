"""``styleunwarp train``: choose and train the registration chain (``--target auto``) or a style network."""

from __future__ import annotations

import click


@click.command()
@click.argument("pairs", type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Model folder to write (model.safetensors, model.json, checkpoint_latest.pt).")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True)
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), default=None, help="Stop cleanly after this much time (best checkpoint kept) [default: 15 with --target auto, no limit otherwise].")
@click.option("--mode", type=click.Choice(["unet", "gan"]), default="unet", show_default=True, help="unet: L1 + edge loss; gan: pix2pix (LSGAN + 100*L1).")
@click.option("--target", type=click.Choice(["auto", "edges", "cbs"]), default="auto", show_default=True, help="auto: hold out pairs, deform them by known smooth deformations and choose the chain (raw MI/NMI, shared code, edges, cbs; with its backend) by registration accuracy (TRE), all within --max-minutes; edges: learn the CBS's boundary map; cbs: learn the CBS grey itself.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--crop", type=click.IntRange(32), default=256, show_default=True, help="Training crop size (multiple of 2**depth).")
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None, help="Default: one crop per crop-sized area of the training images.")
@click.option("--base", type=click.IntRange(1, 256), default=16, show_default=True, help="Generator base width.")
@click.option("--depth", type=click.IntRange(1, 8), default=5, show_default=True, help="Generator depth (downsamplings).")
@click.option("--channels", type=click.Choice(["auto", "1", "3"]), default="auto", show_default=True, help="auto: 3 when the LOM images are colour, else 1; 1: gray input (RGB converted); 3: RGB input.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="Adam learning rate [default: 1e-3 for unet, 2e-4 for gan].")
@click.option("--edge-weight", type=click.FloatRange(0), default=1.0, show_default=True, help="Weight of the loss on image gradients.")
@click.option("--loss", type=click.Choice(["l1", "l2"]), default="l1", show_default=True, help="With --target edges|cbs: l1 learns the conditional median of the target (clean, but empty where a structure is less than even odds), l2 the conditional mean (keeps faint, uncertain structure: sparse targets such as fluorescence); the model kept is the epoch with the lowest validation L1, or MSE with l2.")
@click.option("--align-weight", type=click.FloatRange(0), default=0.0, show_default=True, help="With --target edges|cbs: weight of the alignment loss, the squared length (px^2) of the translation a registration would make of each 128 px window at four pyramid levels of an aligned crop (styleunwarp.style.alignment); the model kept is then the one with the shortest on the validation pairs (val align_px). Not measured for --target auto.")
@click.option("--appearance", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="With --target edges|cbs: probability that a training crop's LOM gets a random look (colour permuted or cast, grey, tone curve, inverted, blur, noise; the CBS unchanged), for LOM looks the pairs do not show (docs/style.md). Refused with --target auto and --unaligned (not measured there).")
@click.option("--description", default=None, help="Training-data description for the model card.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint_latest.pt (its hyper-parameters are kept).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--unaligned", is_flag=True, help="PAIRS are NOT aligned (as `batch` takes them: NAME_LOM/NAME_CBS files, --lom-pattern/--cbs-pattern, or a CSV manifest; sizes, pixel sizes, rotations may differ): self-train from the pairs the trust rule verifies (docs/unaligned.md); writes OUT/chain.json like --target auto [default --max-minutes 30]. A rerun continues from the last finished round.")
@click.option("--trust", type=click.Choice(["agree", "agree-or-good"]), default="agree", show_default=True, help="With --unaligned: trust a pair when two independent chains agree (within 3 px, one moved from the identity start; one representation through two backends only when both are graded decent); agree-or-good also trusts one chain the grader calls good.")
@click.option("--lom-pattern", default=None, help="With --unaligned: regular expression for LOM files, with a group (?P<stem>...) [default: as batch].")
@click.option("--cbs-pattern", default=None, help="With --unaligned: regular expression for CBS files, with a group (?P<stem>...) [default: as batch].")
def train(pairs, out, epochs, max_minutes, mode, target, seed, crop, batch_size, val_fraction, steps_per_epoch,
          base, depth, channels, lr, edge_weight, loss, align_weight, appearance, description, resume, no_progress, unaligned, trust, lom_pattern,
          cbs_pattern) -> None:
    """Train on aligned pairs PAIRS/{lom,cbs}/NAME.tif, PAIRS/NAME_LOM.tif + NAME_CBS.tif, or a CSV manifest (lom,cbs);
    with --unaligned on pairs nobody aligned. The two images of an aligned pair show one field; where
    their sizes differ, the LOM is resampled onto the CBS's grid (by the pixel sizes where both files
    carry one, else by the aspect ratio), and a pair that shows two fields is skipped with the reason.

    --target auto (default) writes OUT/chain.json (the chain chosen by held-out TRE, every
    candidate's TRE) and the chosen representation's weights; `register --model OUT` uses that
    chain. --target edges|cbs write the best style model (by validation L1, or by the validation
    local shift with --align-weight) as
    OUT/model.safetensors + OUT/model.json.
    """
    from ..errors import InputError, StyleunwarpError
    from ..style import Architecture, TrainConfig
    from ..style import train as run

    for value, hint in ((appearance, "--appearance"), (align_weight, "--align-weight"), (loss != "l1", "--loss")):
        if value and (unaligned or target == "auto"):
            raise click.BadParameter("applies to --target edges|cbs only (not measured for --target auto or --unaligned)",
                                     param_hint=hint)
    if unaligned:
        from ..style.unaligned import UnalignedConfig, train_unaligned

        try:
            train_unaligned(pairs, out, UnalignedConfig(
                max_minutes=max_minutes or 30.0, seed=seed, rule=trust, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern,
                channels=None if channels == "auto" else int(channels)), echo=click.echo)
        except StyleunwarpError as exc:
            raise click.ClickException(str(exc)) from exc
        return
    if target == "auto":
        from ..style.auto import AutoConfig, train_auto

        try:
            train_auto(pairs, out, AutoConfig(max_minutes=max_minutes or 15.0, seed=seed,
                                              channels=None if channels == "auto" else int(channels)),
                       echo=click.echo, description=description)
        except StyleunwarpError as exc:
            raise click.ClickException(str(exc)) from exc
        return
    if channels == "auto":
        channels = _detect_channels(pairs)

    try:
        cfg = TrainConfig(mode=mode, target=target, epochs=epochs, max_minutes=max_minutes, seed=seed, crop=crop,
                          batch_size=batch_size, val_fraction=val_fraction, steps_per_epoch=steps_per_epoch,
                          lr=lr, edge_weight=edge_weight, loss=loss, align_weight=align_weight, appearance=appearance,
                          arch=Architecture(in_channels=int(channels), base=base, depth=depth))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        res = run(pairs, out, cfg, resume=resume, progress=not no_progress, data_description=description)
    except InputError as exc:
        raise click.ClickException(str(exc)) from exc
    for msg in res.get("skipped", []):
        click.echo(f"skipped: {msg}", err=True)
    best = res["best"] or {}
    metrics = ", ".join(f"{k[4:]} {best[k]:.4g}" for k in ("val_l1", "val_mse", "val_ssim", "val_psnr", "val_align_px") if best.get(k) is not None)
    click.echo(summary_line(res, metrics))


def summary_line(res: dict, metrics: str) -> str:
    """The last line of ``train``: why it stopped, complete epochs and the steps of an unfinished one."""
    best = res["best"] or {}
    why = "stopped at the time limit" if res["stopped"] == "time" else "done"
    partial = res.get("partial_steps", 0)
    epochs = f"{res['epochs_done']} complete epochs" + (f" + {partial}/{res['steps_per_epoch']} steps of epoch {res['epochs_done'] + 1}" if partial else "")
    best_epoch = best.get("epoch")
    if best_epoch is not None and best.get("complete") is False:
        best_epoch = f"{best_epoch} (partial)"
    return (f"{why}: {epochs} ({res['steps_done']} steps) in {res['minutes']:.1f} min; "
            f"best epoch {best_epoch} ({metrics or 'no validation'}) -> {res['model']}")


def _detect_channels(pairs) -> str:
    """"3" when any LOM image of PAIRS is colour (channels that differ), else "1"."""
    from ..errors import InputError
    from ..io import read_image
    from ..style.auto import is_colour
    from ..style.data import find_pairs

    try:
        files, _ = find_pairs(pairs)
        return "3" if any(is_colour(read_image(pf.lom).data) for pf in files) else "1"
    except InputError as exc:
        raise click.ClickException(str(exc)) from exc
