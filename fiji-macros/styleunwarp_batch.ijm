// styleunwarp_batch.ijm — register every LOM/CBS pair of an acquisition folder with bUnwarpJ.
//
// For each pair NAME_LOM.<tif|tiff|png> + NAME_CBS (or NAME_SEM) in the input folder:
//   1. `styleunwarp prepare` styles the LOM CBS-like and crops/normalises the CBS
//      (OUTPUT/NAME/styled.tif, OUTPUT/NAME/target.tif);
//   2. bUnwarpJ (run("bUnwarpJ", ...), inside ImageJ/Fiji) registers styled.tif to target.tif
//      and saves OUTPUT/NAME/direct_transf.txt and inverse_transf.txt;
//   3. bUnwarpJ re-applies the direct transform to the ORIGINAL LOM:
//      OUTPUT/NAME/registered.tif on the CBS grid.
// A pair whose registered.tif exists is skipped (rerun = resume). A failing pair is logged
// and the batch goes on; OUTPUT/macro_results.csv gets one line per pair.
//
// In Fiji: Plugins > Macros > Run... (a dialog asks for the settings), or headless-ish:
//   xvfb-run ImageJ -batch styleunwarp_batch.ijm "input=/data/run 1|output=/data/out|styleunwarp=/path/to/.venv/bin/styleunwarp"
// Keys: input, output, styleunwarp (the command, full path recommended), model (a model
// folder, "default" or "none"), mode (Fast|Accurate|Mono), initial, final (Very Coarse ..
// Super Fine), subsample (0-7), divergence and curl (weights, default 0.1).
// bUnwarpJ's run() needs a display: use Xvfb on servers.
//
// File names may contain spaces and brackets: user paths never go into the option string
// of run("bUnwarpJ", ...) — the images get fixed window titles and the transforms are
// written to a temporary path and then moved into place.

requires("1.52a");

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

function partner(dir, stem) {
	suffixes = newArray("_CBS", "_SEM", "_cbs", "_sem");
	exts = newArray(".tif", ".tiff", ".png", ".TIF", ".TIFF", ".PNG");
	for (s = 0; s < suffixes.length; s++)
		for (e = 0; e < exts.length; e++)
			if (File.exists(dir + stem + suffixes[s] + exts[e])) return dir + stem + suffixes[s] + exts[e];
	return "";
}

function moveFile(from, to) {
	if (File.exists(to)) File.delete(to);
	if (!File.rename(from, to)) {
		File.copy(from, to);
		File.delete(from);
	}
}

function appendResult(csv, name, status, detail) {
	detail = replace(detail, "[\r\n,]+", " ");
	File.append(name + "," + status + "," + detail, csv);
}

args = getArgument();
if (args == "") {
	Dialog.create("styleunwarp batch");
	Dialog.addDirectory("Acquisition folder", "");
	Dialog.addDirectory("Output folder", "");
	Dialog.addString("styleunwarp command", "styleunwarp", 40);
	Dialog.addString("Style model (folder, default or none)", "default", 40);
	Dialog.addChoice("Registration mode", newArray("Accurate", "Fast", "Mono"), "Accurate");
	Dialog.addChoice("Initial deformation", newArray("Very Coarse", "Coarse", "Fine", "Very Fine"), "Very Coarse");
	Dialog.addChoice("Final deformation", newArray("Very Coarse", "Coarse", "Fine", "Very Fine", "Super Fine"), "Fine");
	Dialog.addNumber("Image subsample factor", 0);
	Dialog.show();
	args = "input=" + Dialog.getString() + "|output=" + Dialog.getString();
	args = args + "|styleunwarp=" + Dialog.getString() + "|model=" + Dialog.getString();
	args = args + "|mode=" + Dialog.getChoice() + "|initial=" + Dialog.getChoice() + "|final=" + Dialog.getChoice();
	args = args + "|subsample=" + Dialog.getNumber();
}
input = withSlash(option(args, "input", ""));
output = withSlash(option(args, "output", ""));
command = option(args, "styleunwarp", "styleunwarp");
model = option(args, "model", "default");
mode = option(args, "mode", "Accurate");
initial = option(args, "initial", "Very Coarse");
final = option(args, "final", "Fine");
subsample = option(args, "subsample", "0");
divergence = option(args, "divergence", "0.1");  // styleunwarp's measured default (the plugin's is 0)
curl = option(args, "curl", "0.1");
if (input == File.separator || !File.isDirectory(input)) exit("styleunwarp: input folder not found: " + input);
File.makeDirectory(output);
if (!File.isDirectory(output)) exit("styleunwarp: cannot create the output folder " + output);
csv = output + "macro_results.csv";
if (!File.exists(csv)) File.append("pair,status,detail", csv);

setBatchMode(true);
files = getFileList(input);
done = 0; skipped = 0; failed = 0;
for (f = 0; f < files.length; f++) {
	name = files[f];
	if (!matches(name, "(?i).*_LOM\\.(tif|tiff|png)$")) continue;
	stem = replace(name, "(?i)_LOM\\.(tif|tiff|png)$", "");
	lomPath = input + name;
	cbsPath = partner(input, stem);
	if (cbsPath == "") {
		print("styleunwarp: " + name + ": no CBS/SEM partner, skipped");
		appendResult(csv, stem, "unpaired", "no " + stem + "_CBS or _SEM image");
		failed++;
		continue;
	}
	pairOut = output + stem + File.separator;
	if (File.exists(pairOut + "registered.tif")) { skipped++; continue; }
	File.makeDirectory(pairOut);

	// 1. style transfer and normalisation (Python), without a shell: arguments go as they are
	if (model == "none") plog = exec(command, "prepare", lomPath, cbsPath, "--out", pairOut, "--style", "none");
	else if (model == "default") plog = exec(command, "prepare", lomPath, cbsPath, "--out", pairOut);
	else plog = exec(command, "prepare", lomPath, cbsPath, "--out", pairOut, "--model", model);
	if (!File.exists(pairOut + "styled.tif") || !File.exists(pairOut + "target.tif")) {
		print("styleunwarp: " + stem + ": prepare failed: " + plog);
		appendResult(csv, stem, "failed", "prepare: " + plog);
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
		print("styleunwarp: " + stem + ": bUnwarpJ wrote no transform");
		appendResult(csv, stem, "failed", "bUnwarpJ wrote no transform");
		failed++;
		continue;
	}
	moveFile(tmp + "direct.txt", pairOut + "direct_transf.txt");
	if (File.exists(tmp + "inverse.txt")) moveFile(tmp + "inverse.txt", pairOut + "inverse_transf.txt");

	// 3. the direct transform applied to the ORIGINAL LOM by bUnwarpJ itself (file paths, no option string)
	call("bunwarpj.bUnwarpJ_.elasticTransformImageMacro", pairOut + "target.tif", lomPath, pairOut + "direct_transf.txt", pairOut + "registered_tmp.tif");
	if (!File.exists(pairOut + "registered_tmp.tif")) {
		appendResult(csv, stem, "failed", "applying the transform to the LOM failed");
		failed++;
		continue;
	}
	moveFile(pairOut + "registered_tmp.tif", pairOut + "registered.tif");
	appendResult(csv, stem, "done", pairOut);
	print("styleunwarp: " + stem + ": registered");
	done++;
}
setBatchMode(false);
print("styleunwarp: " + done + " registered, " + skipped + " already done, " + failed + " failed or unpaired");
