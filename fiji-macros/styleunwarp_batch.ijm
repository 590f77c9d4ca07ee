// styleunwarp_batch.ijm — register every LOM/CBS pair of an acquisition folder with bUnwarpJ.
//
// For each pair NAME_LOM.EXT + NAME_CBS.EXT (or NAME_SEM.EXT; EXT tif, tiff, png, jpg, jpeg or bmp,
// case-insensitive: the pairing rule of `styleunwarp batch`) in the input folder, one of two chains
// (key `chain`):
// * chain=styleunwarp (the default): `styleunwarp register` runs styleunwarp's whole chain on the
//   pair with the bUnwarpJ of this ImageJ/Fiji (--fiji is this ImageJ's folder): style transfer,
//   coarse and fine affine start, bUnwarpJ, the checks that keep the start when the elastic result is
//   not better, and a verdict (good / decent / bad / poor, estimated without ground truth). Writes
//   OUTPUT/NAME/{styled,target,registered}.tif, direct_transf.txt, inverse_transf.txt,
//   metrics.json and overlay.png; the verdict goes into macro_results.csv and the log.
// * chain=bunwarpj: the study's chain, bUnwarpJ run by this macro inside ImageJ/Fiji:
//   1. `styleunwarp prepare` styles the LOM CBS-like and crops/normalises the CBS
//      (OUTPUT/NAME/styled.tif, OUTPUT/NAME/target.tif);
//   2. bUnwarpJ (run("bUnwarpJ", ...)) registers styled.tif to target.tif from the images as
//      delivered (no coarse start, no checks, no verdict) and saves OUTPUT/NAME/direct_transf.txt
//      and inverse_transf.txt;
//   3. bUnwarpJ re-applies the direct transform to the ORIGINAL LOM:
//      OUTPUT/NAME/registered.tif on the CBS grid (colour that is not 8-bit RGB, e.g. a 48-bit
//      TIFF, one channel at a time, saved as a composite in its own bit depth).
// A finished pair is skipped (rerun = resume; chain=styleunwarp: its metrics.json, written last,
// exists; chain=bunwarpj: its registered.tif). A failing pair is logged with its reason (the
// command's one-line error, from its --error-file) and the batch goes on;
// OUTPUT/macro_results.csv gets one line per pair and per unpaired file
// (pair,status,tier,detail; unpaired files named by their stem, e.g. s3_LOM, as in `styleunwarp
// batch`'s results.csv).
//
// In Fiji: Plugins > Macros > Run... (a dialog asks for the settings). Headless, under a
// virtual display, with Fiji's launcher or with plain ImageJ 1 (FIJI = the Fiji.app folder):
//   xvfb-run -a ImageJ-linux64 -batch styleunwarp_batch.ijm "input=/data/run 1|output=/data/out|styleunwarp=/path/to/.venv/bin/styleunwarp"
//   xvfb-run -a java -Dplugins.dir=FIJI -cp FIJI/jars/ij.jar ij.ImageJ -batch styleunwarp_batch.ijm "input=...|output=...|styleunwarp=..."
// Keys: input, output, styleunwarp (the command, full path recommended), chain (styleunwarp |
// bunwarpj), model (a model folder, "default" or "none"), mode (Fast|Accurate|Mono), initial,
// final (Very Coarse .. Super Fine), subsample (0-7), divergence and curl (weights, default 0.1).
// bUnwarpJ's run() needs a display (chain=bunwarpj): use Xvfb on servers.
//
// File names may contain spaces and brackets: user paths never go into the option string
// of run("bUnwarpJ", ...) — the images get fixed window titles and the transforms are
// written to a temporary path and then moved into place; exec() takes each path as one argument.

requires("1.52a");
var EXT = "(tif|tiff|png|jpg|jpeg|bmp)";  // image extensions, as `styleunwarp batch` pairs them

function option(args, key, fallback) {
	parts = split(args, "|");
	for (i = 0; i < parts.length; i++) {
		kv = parts[i];
		eq = indexOf(kv, "=");
		if (eq > 0 && String.trim(substring(kv, 0, eq)) == key)
			return String.trim(substring(kv, eq + 1));
	}
	return fallback;
}

function withSlash(dir) {
	if (endsWith(dir, "/") || endsWith(dir, File.separator)) return dir;
	return dir + File.separator;
}

// The file of `list` named STEM + one of `suffixes` (e.g. "_(CBS|SEM)") + an image extension, any case; "" if none.
// (No `return` inside the loop: ImageJ 1.53t's interpreter fails on it when the call is part of an `if`.)
function partner(list, stem, suffixes) {
	found = "";
	for (k = 0; k < list.length; k++) {
		if (found == "" && lengthOf(list[k]) > lengthOf(stem)) {
			if (substring(list[k], 0, lengthOf(stem)) == stem && matches(substring(list[k], lengthOf(stem)), "(?i)" + suffixes + "\\." + EXT))
				found = list[k];
		}
	}
	return found;
}

function withoutExtension(name) {
	return replace(name, "\\.[^.]*$", "");
}

function readReason(path, fallback) {
	if (!File.exists(path)) return fallback;
	text = String.trim(File.openAsString(path));
	deleted = File.delete(path);
	if (text == "") return fallback;
	return text;
}

function moveFile(from, to) {
	if (File.exists(to)) deleted = File.delete(to);
	if (!File.rename(from, to)) {
		File.copy(from, to);
		deleted = File.delete(from);
	}
}

function appendResult(csv, name, status, tier, detail) {
	detail = replace(detail, "[\r\n,]+", " ");
	File.append(name + "," + status + "," + tier + "," + detail, csv);
}

// bUnwarpJ's scale names as `styleunwarp register` spells them: "Very Coarse" -> "very_coarse"
function scaleOption(name) {
	return replace(toLowerCase(String.trim(name)), " ", "_");
}

// The verdict `styleunwarp register` prints last ("OUT: NMI a -> b, registration s, tier T"); "" if none.
function verdictOf(output) {
	if (!matches(output, "(?s).*, tier [a-z]+\\s*$")) return "";
	return replace(output, "(?s).*, tier ([a-z]+)\\s*$", "$1");
}

// The style arguments of `styleunwarp register` / `prepare` for the model key (always a pair, so one exec() serves all three)
function styleKey(model) {
	if (model == "none" || model == "default") return "--style";
	return "--model";
}
function styleValue(model) {
	if (model == "none") return "none";
	if (model == "default") return "model";
	return model;
}

// bUnwarpJ applies a transform to one grey image (8, 16 or 32 bit) or to 8-bit RGB. Any other LOM
// (a 48-bit colour TIFF, which ImageJ opens as a 16-bit composite of 3 channels, or planar channels)
// is warped one 32-bit channel at a time and put together again in its own bit depth and channels,
// as `styleunwarp register` does. Writes outPath; returns "" or the reason of a failure.
function applyToLom(targetPath, lomPath, transfPath, outPath, tmp) {
	open(lomPath);
	channels = nSlices;
	depth = bitDepth();
	close("*");
	if (channels == 1 || depth == 24) {
		call("bunwarpj.bUnwarpJ_.elasticTransformImageMacro", targetPath, lomPath, transfPath, outPath);
		if (!File.exists(outPath)) return "applying the transform to the LOM failed";
		return "";
	}
	missing = 0;
	for (c = 1; c <= channels; c++) {
		open(lomPath);
		setSlice(c);
		run("Duplicate...", "title=styleunwarp-channel");
		run("32-bit");
		saveAs("Tiff", tmp + "channel.tif");
		close("*");
		call("bunwarpj.bUnwarpJ_.elasticTransformImageMacro", targetPath, tmp + "channel.tif", transfPath, tmp + "warped" + c + ".tif");
		if (!File.exists(tmp + "warped" + c + ".tif")) missing++;
	}
	deleted = File.delete(tmp + "channel.tif");
	if (missing > 0) return "applying the transform to " + missing + " of the LOM's " + channels + " channels failed";
	for (c = 1; c <= channels; c++) {
		open(tmp + "warped" + c + ".tif");
		deleted = File.delete(tmp + "warped" + c + ".tif");
	}
	run("Images to Stack", "name=registered use");
	for (c = 1; c <= channels; c++) {
		setSlice(c);
		setMetadata("Label", "channel " + c);
	}
	setOption("ScaleConversions", false);  // values kept, clipped to the type's range
	if (depth == 8) run("8-bit");
	if (depth == 16) run("16-bit");
	run("Stack to Hyperstack...", "order=xyczt(default) channels=" + channels + " slices=1 frames=1 display=Composite");
	saveAs("Tiff", outPath);
	close("*");
	return "";
}

args = getArgument();
if (args == "") {
	Dialog.create("styleunwarp batch");
	Dialog.addDirectory("Acquisition folder", "");
	Dialog.addDirectory("Output folder", "");
	Dialog.addString("styleunwarp command", "styleunwarp", 40);
	Dialog.addChoice("Chain", newArray("styleunwarp", "bunwarpj"), "styleunwarp");
	Dialog.addString("Style model (folder, default or none)", "default", 40);
	Dialog.addChoice("Registration mode", newArray("Accurate", "Fast", "Mono"), "Accurate");
	Dialog.addChoice("Initial deformation", newArray("Very Coarse", "Coarse", "Fine", "Very Fine"), "Very Coarse");
	Dialog.addChoice("Final deformation", newArray("Very Coarse", "Coarse", "Fine", "Very Fine", "Super Fine"), "Fine");
	Dialog.addNumber("Image subsample factor", 0);
	Dialog.show();
	args = "input=" + Dialog.getString() + "|output=" + Dialog.getString();
	args = args + "|styleunwarp=" + Dialog.getString() + "|chain=" + Dialog.getChoice() + "|model=" + Dialog.getString();
	args = args + "|mode=" + Dialog.getChoice() + "|initial=" + Dialog.getChoice() + "|final=" + Dialog.getChoice();
	args = args + "|subsample=" + Dialog.getNumber();
}
input = withSlash(option(args, "input", ""));
output = withSlash(option(args, "output", ""));
command = option(args, "styleunwarp", "styleunwarp");
chain = option(args, "chain", "styleunwarp");
model = option(args, "model", "default");
mode = option(args, "mode", "Accurate");
initial = option(args, "initial", "Very Coarse");
final = option(args, "final", "Fine");
subsample = option(args, "subsample", "0");
divergence = option(args, "divergence", "0.1");  // styleunwarp's measured default (the plugin's is 0)
curl = option(args, "curl", "0.1");
if (chain != "styleunwarp" && chain != "bunwarpj") exit("styleunwarp: chain must be styleunwarp or bunwarpj, not " + chain);
if (input == File.separator || !File.isDirectory(input)) exit("styleunwarp: input folder not found: " + input);
File.makeDirectory(output);
if (!File.isDirectory(output)) exit("styleunwarp: cannot create the output folder " + output);
csv = output + "macro_results.csv";
if (!File.exists(csv)) File.append("pair,status,tier,detail", csv);
fiji = getDirectory("imagej");  // this ImageJ/Fiji: `styleunwarp register --fiji` uses its bUnwarpJ
if (fiji == "") fiji = File.getParent(getDirectory("plugins"));

setBatchMode(true);
files = getFileList(input);
done = 0; skipped = 0; failed = 0; unpaired = 0;
verdicts = "";  // the tiers of this run's pairs, for the last line
// CBS/SEM files without a LOM partner: reported like `styleunwarp batch` does
for (f = 0; f < files.length; f++) {
	if (!matches(files[f], "(?i).+_(CBS|SEM)\\." + EXT)) continue;
	stem = replace(files[f], "(?i)_(CBS|SEM)\\." + EXT + "$", "");
	lomName = partner(files, stem, "_LOM");
	if (lomName == "") {
		print("styleunwarp: unpaired: " + files[f] + " (no LOM image with the same stem)");
		appendResult(csv, withoutExtension(files[f]), "unpaired", "", "no LOM image with the same stem");
		unpaired++;
	}
}
for (f = 0; f < files.length; f++) {
	name = files[f];
	if (!matches(name, "(?i).+_LOM\\." + EXT)) continue;
	stem = replace(name, "(?i)_LOM\\." + EXT + "$", "");
	lomPath = input + name;
	cbsName = partner(files, stem, "_(CBS|SEM)");
	if (cbsName == "") {
		print("styleunwarp: unpaired: " + name + " (no CBS/SEM image with the same stem)");
		appendResult(csv, withoutExtension(name), "unpaired", "", "no CBS/SEM image with the same stem");
		unpaired++;
		continue;
	}
	cbsPath = input + cbsName;
	pairOut = output + stem + File.separator;
	if (chain == "styleunwarp" && File.exists(pairOut + "metrics.json")) { skipped++; continue; }
	if (chain == "bunwarpj" && File.exists(pairOut + "registered.tif")) { skipped++; continue; }
	File.makeDirectory(pairOut);
	errorFile = pairOut + "styleunwarp_error.txt";

	if (chain == "styleunwarp") {
		// the whole chain in one command, without a shell: arguments go as they are. exec() returns
		// only the command's standard output: the reason of a failure comes back through --error-file.
		rlog = exec(command, "register", lomPath, cbsPath, "--out", pairOut, styleKey(model), styleValue(model), "--fiji", fiji,
			"--mode", toLowerCase(mode), "--initial-deformation", scaleOption(initial), "--final-deformation", scaleOption(final),
			"--subsample", subsample, "--divergence-weight", divergence, "--curl-weight", curl, "--error-file", errorFile);
		tier = verdictOf(rlog);
		if (!File.exists(pairOut + "metrics.json") || tier == "") {
			reason = readReason(errorFile, String.trim(rlog));
			if (reason == "") reason = "no output from " + command + " (is it the full path of the styleunwarp command?)";
			print("styleunwarp: " + stem + ": FAILED: " + reason);
			appendResult(csv, stem, "failed", "", "register: " + reason);
			failed++;
			continue;
		}
		appendResult(csv, stem, "done", tier, pairOut);
		print("styleunwarp: " + stem + ": registered, tier " + tier + " (" + pairOut + "metrics.json)");
		verdicts = verdicts + " " + tier;
		done++;
		continue;
	}

	// 1. style transfer and normalisation (Python), without a shell: arguments go as they are.
	//    exec() returns only the command's standard output: the reason of a failure comes back
	//    through --error-file.
	plog = exec(command, "prepare", lomPath, cbsPath, "--out", pairOut, styleKey(model), styleValue(model), "--error-file", errorFile);
	if (!File.exists(pairOut + "styled.tif") || !File.exists(pairOut + "target.tif")) {
		reason = readReason(errorFile, String.trim(plog));
		if (reason == "") reason = "no output from " + command + " (is it the full path of the styleunwarp command?)";
		print("styleunwarp: " + stem + ": FAILED: " + reason);
		appendResult(csv, stem, "failed", "", "prepare: " + reason);
		failed++;
		continue;
	}

	// 2. bUnwarpJ on fixed window titles, transforms to temporary paths
	open(pairOut + "target.tif"); rename("styleunwarp-target");
	open(pairOut + "styled.tif"); rename("styleunwarp-source");
	tmp = getDirectory("temp") + "styleunwarp_" + getTime() + "_";
	run("bUnwarpJ", "source_image=styleunwarp-source target_image=styleunwarp-target registration=" + mode
		+ " image_subsample_factor=" + subsample + " initial_deformation=[" + initial + "] final_deformation=[" + final + "]"
		+ " divergence_weight=" + divergence + " curl_weight=" + curl + " landmark_weight=0 image_weight=1 consistency_weight=10 stop_threshold=0.01"
		+ " save_transformations save_direct_transformation=[" + tmp + "direct.txt] save_inverse_transformation=[" + tmp + "inverse.txt]");
	close("*");
	if (!File.exists(tmp + "direct.txt")) {
		print("styleunwarp: " + stem + ": FAILED: bUnwarpJ wrote no transform");
		appendResult(csv, stem, "failed", "", "bUnwarpJ wrote no transform");
		failed++;
		continue;
	}
	moveFile(tmp + "direct.txt", pairOut + "direct_transf.txt");
	if (File.exists(tmp + "inverse.txt")) moveFile(tmp + "inverse.txt", pairOut + "inverse_transf.txt");

	// 3. the direct transform applied to the ORIGINAL LOM by bUnwarpJ itself (file paths, no option string; colour
	//    that is not 8-bit RGB one channel at a time)
	reason = applyToLom(pairOut + "target.tif", lomPath, pairOut + "direct_transf.txt", pairOut + "registered_tmp.tif", tmp);
	if (reason == "" && !File.exists(pairOut + "registered_tmp.tif")) reason = "applying the transform to the LOM failed";
	if (reason != "") {
		print("styleunwarp: " + stem + ": FAILED: " + reason);
		appendResult(csv, stem, "failed", "", reason);
		failed++;
		continue;
	}
	moveFile(pairOut + "registered_tmp.tif", pairOut + "registered.tif");
	appendResult(csv, stem, "done", "unchecked", pairOut);
	print("styleunwarp: " + stem + ": registered (chain=bunwarpj: not checked, no verdict)");
	done++;
}
setBatchMode(false);
print("styleunwarp: " + done + " registered, " + skipped + " already done, " + failed + " failed, " + unpaired + " unpaired; results in " + csv);
if (verdicts != "") {
	line = "";
	tiers = newArray("good", "decent", "bad", "poor");
	for (t = 0; t < tiers.length; t++) {
		n = lengthOf(verdicts) - lengthOf(replace(verdicts, " " + tiers[t], ""));
		line = line + " " + (n / (lengthOf(tiers[t]) + 1)) + " " + tiers[t];
	}
	print("styleunwarp: verdicts of this run:" + line + " (bad and poor results are not aligned: see their metrics.json and overlay.png)");
}
if (done + skipped + failed == 0) print("styleunwarp: no LOM/CBS pair found in " + input + "; pairing rule: NAME_LOM.EXT + NAME_CBS.EXT (or NAME_SEM.EXT), EXT tif/tiff/png/jpg/jpeg/bmp");
