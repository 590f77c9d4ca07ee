"""Command-line options shared by several sub-commands."""

from __future__ import annotations

import functools
from typing import Callable

import click

from ..quality import HELDOUT_KEY
from ..residual import describe, misaligned

_SCALE_CHOICES = click.Choice(["very_coarse", "coarse", "fine", "very_fine", "super_fine"], case_sensitive=False)


def bunwarpj_options(func: Callable) -> Callable:
    """Add bUnwarpJ's ten parameters (plugin names and defaults) and pass them as ``params``."""
    opts = [
        click.option("--mode", type=click.Choice(["fast", "accurate", "mono"], case_sensitive=False), default="accurate", show_default=True, help="bUnwarpJ registration mode (mono: direct transform only)."),
        click.option("--subsample", "img_subsamp_fact", type=click.IntRange(0, 7), default=0, show_default=True, help="Image subsampling factor (images reduced by 2^s for the image term)."),
        click.option("--initial-deformation", type=_SCALE_CHOICES, default="very_coarse", show_default=True),
        click.option("--final-deformation", type=_SCALE_CHOICES, default="fine", show_default=True),
        click.option("--divergence-weight", type=float, default=0.1, show_default=True, help="(bUnwarpJ's own default is 0; 0.1 measured better here, see docs/study-table.md)"),
        click.option("--curl-weight", type=float, default=0.1, show_default=True, help="(bUnwarpJ's own default is 0; 0.1 measured better here)"),
        click.option("--landmark-weight", type=float, default=0.0, show_default=True),
        click.option("--image-weight", type=float, default=1.0, show_default=True),
        click.option("--consistency-weight", type=float, default=10.0, show_default=True),
        click.option("--stop-threshold", type=float, default=0.01, show_default=True),
    ]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ..registration import BUnwarpJParams

        try:
            kwargs["params"] = BUnwarpJParams(
                mode=kwargs.pop("mode"),
                img_subsamp_fact=kwargs.pop("img_subsamp_fact"),
                min_scale_deformation=kwargs.pop("initial_deformation"),
                max_scale_deformation=kwargs.pop("final_deformation"),
                divergence_weight=kwargs.pop("divergence_weight"),
                curl_weight=kwargs.pop("curl_weight"),
                landmark_weight=kwargs.pop("landmark_weight"),
                image_weight=kwargs.pop("image_weight"),
                consistency_weight=kwargs.pop("consistency_weight"),
                stop_threshold=kwargs.pop("stop_threshold"),
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        return func(*args, **kwargs)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def style_options(func: Callable) -> Callable:
    """``--model MODEL`` and ``--style model|none``."""
    func = click.option("--style", type=click.Choice(["model", "none"]), default="model", show_default=True, help="'none' registers the raw LOM (the study's baseline).")(func)
    func = click.option("--model", type=click.Path(exists=True), default=None, help="Style model: the folder `train` writes, or a weights file (default: the shipped model).")(func)
    return func


ERROR_FILE_KEY = "styleunwarp.error_file"


def _remember_error_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        from pathlib import Path

        Path(value).unlink(missing_ok=True)  # a stale reason from an earlier run must not be read as this run's
        ctx.meta[ERROR_FILE_KEY] = value


def error_file_option(func: Callable) -> Callable:
    """``--error-file FILE``: on failure the command also writes its one-line reason to FILE.

    For callers that see only standard output (ImageJ's macro ``exec()``: the Fiji macro). The
    option is eager, so errors in the other arguments are recorded too; the file is removed at the
    start and written by the command group's one error handler (``cli._LazyGroup.invoke``), so every
    command with this option records every failure the same way. Not passed to the command.
    """
    return click.option(
        "--error-file", type=click.Path(dir_okay=False), default=None, is_eager=True, expose_value=False, callback=_remember_error_file,
        help="On failure also write the one-line reason to this file (the Fiji macro reads it: ImageJ's exec() returns no stderr).",
    )(func)


def fiji_option(func: Callable) -> Callable:
    """``--fiji DIR``."""
    return click.option("--fiji", "fiji_dir", type=click.Path(file_okay=False), default=None, envvar="FIJI_HOME", help="Fiji.app or ImageJ folder with bUnwarpJ (default: FIJI_HOME, then the usual places).")(func)


def coarse_option(func: Callable) -> Callable:
    """``--coarse-sigma S``: register blurred images first (default: automatic)."""
    return click.option(
        "--coarse-sigma",
        type=click.FloatRange(0, 50),
        default=None,
        help="Register images blurred by this Gaussian sigma (px) first, then the sharp ones; 0 = off (default: off, or what the model's chain.json prescribes; boundary maps register best in one sharp pass behind the coarse step, docs/study-table.md).",
    )(func)


def _parse_backend_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    import json

    out: dict = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a plain string, e.g. similarity=nmi
        out[key.strip()] = value
    return out


def backend_options(func: Callable) -> Callable:
    """``-o KEY=VALUE`` (repeatable): keyword arguments for the registration backend."""
    return click.option(
        "-o",
        "--backend-option",
        "backend_options",
        multiple=True,
        callback=_parse_backend_options,
        metavar="KEY=VALUE",
        help="Extra keyword argument of the backend, repeatable (e.g. -o similarity=nmi -o max_samples=128 for native).",
    )(func)


def adapt_option(func: Callable) -> Callable:
    """``--adapt-steps N``: test-time adaptation of a style model to each pair (:mod:`styleunwarp.pipeline.adapt`)."""
    return click.option(
        "--adapt-steps", type=click.IntRange(min=0), default=None,
        help="With a style model (edges/cbs): fine-tune a copy of it for this many steps on the LOM as registered, register again "
             "with its map and keep the mean of the two results, unless the raw images' structure agrees clearly worse with it "
             "(about 25 s more per 512 px pair on 2 cores; docs/style.md, 'Test-time adaptation'). 0: off. "
             "[default: 150 with a style model that has no chain card (the shipped one), 0 with a model from train]",
    )(func)


def coarse_alignment_option(func: Callable) -> Callable:
    """``--coarse auto|none|similarity|affine``, ``--fine-affine/--no-fine-affine`` and the deprecated ``--prealign`` (= similarity)."""
    func = click.option(
        "--fine-affine/--no-fine-affine",
        default=True,
        show_default=True,
        help="Refine the coarse map by a similarity (rotation, scale, shift) at full resolution before the elastic step, kept unless "
        "the raw images' structure agrees clearly worse with it (docs/coarse.md); not with --coarse none.",
    )(func)
    func = click.option(
        "--prealign",
        is_flag=True,
        hidden=True,
        help="Deprecated: the coarse alignment is on by default (--coarse); same as --coarse similarity.",
    )(func)
    return click.option(
        "--coarse",
        type=click.Choice(["auto", "none", "similarity", "affine"], case_sensitive=False),
        default="auto",
        show_default=True,
        help="Coarse alignment before the elastic step: rotation over the full circle, scale (from the pixel sizes, "
        "else searched 0.25-4x) and shift, scored on the representations; the images as given win unless another "
        "hypothesis is clearly better. auto = similarity; affine adds shear; none = off.",
    )(func)


def pixel_size_options(func: Callable) -> Callable:
    """``--lom-pixel-size UM`` and ``--cbs-pixel-size UM``: override the files' metadata."""
    size = click.FloatRange(min=0, min_open=True)
    func = click.option("--cbs-pixel-size", type=size, default=None, metavar="UM", help="CBS pixel size in micrometres (overrides the file's metadata).")(func)
    return click.option("--lom-pixel-size", type=size, default=None, metavar="UM", help="LOM pixel size in micrometres (overrides the file's metadata).")(func)


def verdict_lines(metrics: dict) -> list[tuple[str, bool]]:
    """Console lines ``(text, loud)`` for one result's verdict, coarse choice, warnings and undo."""
    lines: list[tuple[str, bool]] = []
    for w in metrics.get("warnings", []):
        lines.append((f"warning: {w}", True))
    c = metrics.get("coarse") or {}
    if c:
        ch = c.get("chosen", {})
        if c.get("kept") == "identity":
            lines.append((f"coarse alignment ({c.get('method')}): images kept as given ({c.get('reason')})", False))
        else:
            lines.append((
                f"coarse alignment ({c.get('method')}): rotation {ch.get('rotation_deg', 0):.1f} deg, scale {ch.get('scale', 1):.3g}, "
                f"shift ({ch.get('shift_x', 0):.0f}, {ch.get('shift_y', 0):.0f}) px ({c.get('reason')})",
                False,
            ))
    f = metrics.get("fine_affine") or {}
    if f.get("reason"):
        lines.append((f"fine affine step: {'kept the coarse map: ' if f.get('kept') == 'start' else ''}{f['reason']}", False))
    e = metrics.get("elastic") or {}
    if e.get("kept") == "start":
        lines.append((f"elastic step not kept: {e.get('reason')}", False))
    elif e.get("restart"):
        lines.append((f"elastic step: {e.get('reason')}", False))
    ad = metrics.get("adapt")
    if ad:
        if ad.get("combined") == "mean":
            lines.append((f"adapted: the model fine-tuned on this pair ({ad.get('steps')} steps, loss {ad.get('loss_first', 0):.3f} -> "
                           f"{ad.get('loss_last', 0):.3f}) registered it again; kept the mean of the two results "
                           f"(elastic step kept: first {ad['first'].get('kept')}, adapted {ad['adapted'].get('kept')})", False))
        elif ad.get("reason"):
            lines.append((f"not adapted: {ad['reason']}", False))
        else:
            lines.append((f"adapted, but kept the first result: {ad.get('combined')}", False))
    so = metrics.get("second_opinion")
    if so:
        lines.append((f"second opinion ({so.get('trigger')}): {so.get('reason')}", False))
    ev = metrics.get("structure") or {}
    if ev.get("z") is not None:
        said = "aligned" if ev.get("aligned") else "NOT shown aligned"
        residual = describe(ev)
        residual = (", " + residual if residual else "") + (" (still misaligned)" if misaligned(ev) else "")
        coarse = ev.get("coarse") or {}
        if coarse.get("z") is not None:
            residual += (f"; with descriptors at 1/{coarse['factor']} resolution, where the coarse step found the structure both "
                         f"share: {'aligned' if coarse.get('aligned') else 'NOT shown aligned'} ({coarse['z']:.1f} sd above chance; "
                         f"a verdict to about {coarse['factor']} px, no closer)")
        lines.append((f"structure evidence (raw LOM vs raw CBS, any modality): {said}, MIND agreement {ev.get('mind', float('nan')):.3f}, "
                      f"{ev['z']:.1f} sd above chance{residual}", False))
    tier, source = metrics.get("tier"), metrics.get("grade_source")
    if tier:
        if source == "tre":
            how = f"from the ground truth: TRE mean {metrics['tre']['mean']:.2f} px, p95 {metrics['tre']['p95']:.2f} px"
        else:
            d = metrics.get("grade_details") or {}
            cons = d.get("consistency_px")
            if d.get("by_evidence"):
                how = (f"estimated by the grader, no ground truth: the structure evidence puts it {d.get('residual_px'):.2f} px "
                       "from its target's structure")
            elif d.get("by_structure"):
                how = (f"estimated by the grader, no ground truth: raw images of two modalities without a residual estimate, so "
                       f"the structure evidence alone ({d.get('structure_z') or float('nan'):.1f} sd above chance) decides; "
                       "it shows alignment, not its accuracy: at most decent")
            else:
                on = f" on the model chain's {d['graded_on']} representation" if d.get("graded_on") else ""
                how = f"estimated by the grader, no ground truth: NCC{on} {d.get('styled_ncc_after') or float('nan'):.3f}" + ("" if cons is None else f", consistency {cons:.2f} px")
            if d.get("at_chance"):
                how += ("; at most bad: the raw images' structure agrees no better than chance, so nothing shows "
                        "that the result overlaps its target")
            elif d.get("capped_by_evidence"):
                how += "; at most decent while the structure evidence does not show it aligned"
            elif d.get("lifted_by_evidence"):
                how += ("; raised to decent: the structure evidence shows it aligned where the representation correlates "
                        "weakly (a look the model was not trained on?); it shows alignment, not its accuracy")
            elif tier == "good" and not d.get("by_evidence") and not d.get("by_structure"):
                how += ("; without a residual estimate the grader tells working from failed results, "
                        "not good from decent (docs/quality.md)")
            if d.get("capped_by_heldout"):
                held = metrics[HELDOUT_KEY]
                how += (f"; at most {tier}: train placed this chain's {held.get('cases')} held-out cases of the field at a median "
                        f"of {held.get('median_tre_px'):.2f} px from the truth, which the structure evidence cannot see past")
        loud = tier in ("poor", "bad")
        text = f"verdict: {tier.upper()} ({how})"
        if loud:
            text += "; the result is probably wrong: look at overlay.png before using it"
        lines.append((text, loud))
    return lines


def _backend_given() -> bool:
    """Whether ``--backend`` was given on the command line (then it wins over a model's chain)."""
    return click.get_current_context().get_parameter_source("backend") != click.core.ParameterSource.DEFAULT


def second_opinion_option(func: Callable) -> Callable:
    return click.option(
        "--second-opinion/--no-second-opinion", default=True, show_default=True,
        help="With a model from train (chain.json): where the model's chain gives a result that is not structure "
             "evidence of alignment, also try the model's next-best chains and keep the result whose source agrees "
             "best with the target (recorded in metrics.json 'second_opinion'). With a style model without a chain "
             "card (the shipped one): also register every pair with a training-free chain (elastix MI) and keep "
             "the result that agrees better.",
    )(func)


def model_alternatives(model, style: str, second_opinion: bool, echo: Callable[[str], None] = click.echo) -> tuple:
    """The chains for a second opinion: those of ``model``'s card, or for a style model without a
    card (the shipped one) a training-free chain on every pair; none when ``--backend`` was given
    or ``--no-second-opinion``."""
    from ..pipeline.second_opinion import every_pair_reason
    from ..style.chain import alternatives, load_chain, style_model_alternatives

    if not second_opinion or _backend_given() or style != "model":
        return ()
    alts = tuple(style_model_alternatives() if load_chain(model) is None else alternatives(model))
    ranked = [c for c in alts if not c.last_resort]
    last = [c.label for c in alts if c.last_resort]
    rest = f"; while no result is evidence at all, each other representation: {', '.join(last)}" if last else ""
    if ranked and ranked[0].every_pair:
        echo(f"second opinion on every pair: {ranked[0].label} ({every_pair_reason(ranked[0])}; each pair's structure decides)"
             + (f"; where needed: {', '.join(c.label for c in ranked[1:])}" if ranked[1:] else "") + rest)
    elif alts:
        echo("second opinion where needed: " + ", ".join(c.label for c in ranked) + rest)
    return alts


def model_chain(model, style: str, backend: str, backend_options: dict, coarse_sigma: float | None, echo: Callable[[str], None] = click.echo):
    """The backend, its options and coarse sigma to use: the model's chain (``train --target auto``)
    unless ``--backend`` was given on the command line. Returns ``(backend, options, coarse_sigma)``."""
    from ..style.chain import registration_heldout, resolve_backend

    explicit = _backend_given()
    backend, backend_options, coarse_sigma, chain = resolve_backend(model, style, backend, dict(backend_options or {}), coarse_sigma, explicit)
    if chain is not None:
        held = registration_heldout(model, style, None, backend, backend_options)
        measured = ("; on train's held-out cases: not measured" if held is None else
                    f"; on train's {held['cases']} held-out cases: {held['within_1.5px']} within 1.5 px, "
                    f"{held['within_5px']} within 5 px, median TRE {held['median_tre_px']} px")
        echo(f"model chain: {chain.representation} -> {backend}" + (" (--backend given)" if explicit else "") + measured)
    return backend, backend_options, coarse_sigma
