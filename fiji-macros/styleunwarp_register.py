#@ File (label="LOM image (source, moved)") lom
#@ File (label="CBS image (target, fixed)") cbs
#@ File (label="Output folder", style="directory") output
#@ String (label="styleunwarp command (full path recommended)", value="styleunwarp") command
#@ String (label="Style model: a model folder, 'default' or 'none'", value="default") model
#@ String (label="Chain", choices={"styleunwarp", "bunwarpj"}) chain
#@ String (label="Registration mode", choices={"Accurate", "Fast", "Mono"}) mode
#@ String (label="Initial deformation", choices={"Very Coarse", "Coarse", "Fine", "Very Fine"}) initial
#@ String (label="Final deformation", choices={"Fine", "Very Fine", "Coarse", "Very Coarse", "Super Fine"}) final
#@ Integer (label="Image subsample factor", value=0, min=0, max=7) subsample
#@ Boolean (label="Show the registered LOM", value=true) show
"""styleunwarp for one pair, from Fiji's script editor (language: Python/Jython 2.7).

chain=styleunwarp (the default): `styleunwarp register` (the Python package, run as a command)
runs styleunwarp's whole chain with this Fiji's bUnwarpJ (--fiji): style transfer, coarse and fine
affine start, bUnwarpJ, the checks that keep the start when the elastic result is not better, the
transform re-applied to the original LOM, and a verdict (good / decent / bad / poor), logged here
and recorded in OUTPUT/metrics.json with OUTPUT/overlay.png.

chain=bunwarpj, the study's chain with bUnwarpJ run by this script:
1. `styleunwarp prepare` styles the LOM CBS-like and crops/normalises the CBS:
   OUTPUT/styled.tif and OUTPUT/target.tif.
2. bUnwarpJ registers styled.tif to target.tif in this Fiji (its static batch API), from the images
   as delivered (no coarse start, no checks, no verdict), and saves OUTPUT/direct_transf.txt (and
   inverse_transf.txt unless Mono).
3. bUnwarpJ applies the direct transform to the ORIGINAL LOM: OUTPUT/registered.tif (colour that is
   not 8-bit RGB, e.g. a 48-bit TIFF, one channel at a time, saved as a composite in its bit depth).
Open it in Fiji's script editor (File > Open, then Run), or put it in Fiji.app/scripts/Plugins/
to get a menu entry. Headless, with plain ImageJ 1 and Jython (no Fiji GUI, no display):
  java -Djava.awt.headless=true -cp jython.jar:FIJI/jars/ij.jar:FIJI/plugins/bUnwarpJ_.jar \
       org.python.util.jython styleunwarp_register.py LOM CBS OUTPUT command=/path/to/styleunwarp mode=Mono
"""
import os
import re
import shutil
import subprocess
import tempfile

from bunwarpj import Param, bUnwarpJ_
from ij import CompositeImage, IJ, ImagePlus, ImageStack
from ij import Prefs

MODES = {"Fast": 0, "Accurate": 1, "Mono": 2}
SCALES = {"Very Coarse": 0, "Coarse": 1, "Fine": 2, "Very Fine": 3, "Super Fine": 4}


def style_args(model):
    """The style arguments of `styleunwarp register` / `prepare` for a model folder, 'default' or 'none'."""
    if model == "none":
        return ["--style", "none"]
    if model in ("", "default"):
        return []
    return ["--model", model]


def run_command(args):
    """Run a styleunwarp command; log and return its output (stdout and stderr); raise on failure."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = proc.communicate()[0]
    if proc.returncode != 0:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        raise RuntimeError("styleunwarp %s failed (%d): %s" % (args[1], proc.returncode, lines[-1] if lines else "no output"))
    for line in text.strip().splitlines():
        IJ.log(line)
    return text


def this_imagej():
    """The ImageJ/Fiji folder whose bUnwarpJ runs this script (`register --fiji` then uses the same jar):
    the folder above the bUnwarpJ jar's plugins/ or jars/, else ImageJ's own folder."""
    jar = bUnwarpJ_().getClass().getProtectionDomain().getCodeSource().getLocation().toURI().getPath()
    parent = os.path.dirname(jar)
    if os.path.basename(parent) in ("plugins", "jars"):
        return os.path.dirname(parent)
    return IJ.getDirectory("imagej") or Prefs.getImageJDir()


def register_chain(lom_path, cbs_path, out_dir, command, model, mode, initial, final, subsample):
    """styleunwarp's whole chain (`styleunwarp register`); return (registered path, tier)."""
    scale = lambda name: name.strip().lower().replace(" ", "_")
    text = run_command([command, "register", lom_path, cbs_path, "--out", out_dir] + style_args(model)
                       + ["--fiji", this_imagej(), "--mode", mode.lower(), "--initial-deformation", scale(initial),
                          "--final-deformation", scale(final), "--subsample", str(int(subsample))])
    found = re.findall(r", tier ([a-z]+)\s*$", text.strip())
    tier = found[-1] if found else "unknown"
    registered = os.path.join(out_dir, "registered.tif")
    IJ.log("styleunwarp: registered LOM written to %s, tier %s (see metrics.json and overlay.png)" % (registered, tier))
    return registered, tier


def prepare(command, lom_path, cbs_path, out_dir, model):
    """Run `styleunwarp prepare`; return (styled path, target path)."""
    run_command([command, "prepare", lom_path, cbs_path, "--out", out_dir] + style_args(model))
    return os.path.join(out_dir, "styled.tif"), os.path.join(out_dir, "target.tif")


def apply_to_lom(target_path, lom_path, direct, registered):
    """bUnwarpJ's direct transform applied to the original LOM, written to ``registered``.

    bUnwarpJ applies a transform to one grey image (8, 16 or 32 bit) or to 8-bit RGB. Any other LOM
    (a 48-bit colour TIFF, which ImageJ opens as a 16-bit composite of 3 channels, or planar
    channels) is warped one 32-bit channel at a time and put together again in its own bit depth
    and channels, as `styleunwarp register` does."""
    lom = IJ.openImage(lom_path)
    if lom is None:
        raise RuntimeError("ImageJ cannot open %s" % lom_path)
    channels, depth = lom.getStackSize(), lom.getBitDepth()
    if channels == 1 or depth == 24:
        bUnwarpJ_.elasticTransformImageMacro(target_path, lom_path, direct, registered)
        return
    tmp = tempfile.mkdtemp(prefix="styleunwarp_")
    try:
        stack = None
        for c in range(1, channels + 1):
            channel = os.path.join(tmp, "channel.tif")
            warped = os.path.join(tmp, "warped%d.tif" % c)
            IJ.saveAsTiff(ImagePlus("channel", lom.getStack().getProcessor(c).convertToFloat()), channel)
            bUnwarpJ_.elasticTransformImageMacro(target_path, channel, direct, warped)
            result = IJ.openImage(warped) if os.path.isfile(warped) else None
            if result is None:
                raise RuntimeError("applying the transform to channel %d of %s failed" % (c, lom_path))
            ip = result.getProcessor()
            if depth == 16:
                ip = ip.convertToShortProcessor(False)  # values kept, clipped to the type's range
            elif depth == 8:
                ip = ip.convertToByteProcessor(False)
            if stack is None:
                stack = ImageStack(ip.getWidth(), ip.getHeight())
            stack.addSlice("channel %d" % c, ip)
        out = ImagePlus("registered", stack)
        out.setDimensions(channels, 1, 1)
        IJ.saveAsTiff(CompositeImage(out, CompositeImage.COMPOSITE), registered)
    finally:
        shutil.rmtree(tmp, True)


def register(lom_path, cbs_path, out_dir, command="styleunwarp", model="default", mode="Accurate",
             initial="Very Coarse", final="Fine", subsample=0, show=False, chain="styleunwarp"):
    """Register one LOM/CBS pair; return the path of the registered LOM."""
    if chain not in ("styleunwarp", "bunwarpj"):
        raise ValueError("chain must be styleunwarp or bunwarpj, not %r" % chain)
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    if chain == "styleunwarp":
        registered = register_chain(lom_path, cbs_path, out_dir, command, model, mode, initial, final, subsample)[0]
        if show:
            IJ.openImage(registered).show()
        return registered
    styled_path, target_path = prepare(command, lom_path, cbs_path, out_dir, model)
    target = IJ.openImage(target_path)
    source = IJ.openImage(styled_path)
    # divergence and curl weights 0.1: styleunwarp's measured default (the plugin's is 0)
    param = Param(MODES[mode], int(subsample), SCALES[initial], SCALES[final], 0.1, 0.1, 0.0, 1.0, 10.0, 0.01)
    transf = bUnwarpJ_.computeTransformationBatch(target, source, None, None, param)
    if transf is None:
        raise RuntimeError("bUnwarpJ returned no transformation")
    direct = os.path.join(out_dir, "direct_transf.txt")
    transf.saveDirectTransformation(direct)
    if mode != "Mono":
        transf.saveInverseTransformation(os.path.join(out_dir, "inverse_transf.txt"))
    registered = os.path.join(out_dir, "registered.tif")
    apply_to_lom(target_path, lom_path, direct, registered)
    IJ.log("styleunwarp: registered LOM written to %s (chain=bunwarpj: not checked, no verdict)" % registered)
    if show:
        IJ.openImage(registered).show()
    return registered


USAGE = ("usage: jython styleunwarp_register.py LOM CBS OUTPUT [command=PATH] [chain=styleunwarp|bunwarpj]"
         " [model=default|none|FOLDER] [mode=Accurate|Fast|Mono] [initial=SCALE] [final=SCALE] [subsample=N]")


def main(argv):
    """Headless use without Fiji's GUI: LOM CBS OUTPUT, then key=value settings."""
    if len(argv) < 3 or any("=" not in a for a in argv[3:]):
        print(USAGE)
        return 2
    opts = dict(a.split("=", 1) for a in argv[3:])
    unknown = [k for k in opts if k not in ("command", "chain", "model", "mode", "initial", "final", "subsample")]
    if unknown:
        print("unknown setting(s): %s\n%s" % (", ".join(unknown), USAGE))
        return 2
    try:
        print(register(argv[0], argv[1], argv[2], show=False, **opts))
    except Exception as exc:  # one line for the user, as the styleunwarp command does
        print("styleunwarp_register: %s" % str(exc).strip().splitlines()[-1] if str(exc).strip() else exc)
        return 1
    return 0


if all(name in globals() for name in ("lom", "cbs", "output")):  # run by Fiji with the #@ parameters
    register(lom.getAbsolutePath(), cbs.getAbsolutePath(), output.getAbsolutePath(), command, model,
             mode, initial, final, subsample, show, chain)
elif __name__ == "__main__":  # run headless by Jython: see USAGE and fiji-macros/README.md
    import sys

    sys.exit(main(sys.argv[1:]))
