"""Command line: `python -m rbe_edge pack|inspect|verify|adapt`, thin over the SDK."""
import argparse
import json
import logging
import sys
from typing import List, Optional

from rbe_edge.errors import RbeError

PACK_DESCRIPTION = """\
Pack an ONNX model into a bundle folder: model.rbe (weights as bitplanes),
infer.onnx (the model with one rbe_edge.BitplaneDecode node per packed weight,
runnable by stock onnxruntime) and manifest.json.

Weights of MatMul, Gemm, Conv and other float tensors of 2 to 4 dimensions
with at least --min-elements values are packed; biases, norms and small
tensors stay float. Bits and group size are chosen by the output error
measured with onnxruntime on sample inputs, within --max-error.
"""


def add_pack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="path of the ONNX model to pack (external data files "
                        "must sit where the model says)")
    parser.add_argument("-o", "--output", required=True, metavar="BUNDLE_DIR",
                        help="bundle folder to create; it must not exist or be empty "
                        "unless --overwrite is given")
    parser.add_argument("--bits", type=int, default=8, metavar="B",
                        help="code width in bits per weight, 2..16, where the search starts "
                        "(default: 8)")
    parser.add_argument("--group-size", type=int, default=None, metavar="G",
                        help="weights (columns of a row) sharing one scale and zero point; "
                        "a tensor whose rows G does not divide gets one group per row "
                        "(`inspect` shows each tensor's group size); default: the search "
                        "tries one group per row, then 128, 64 and 32")
    parser.add_argument("--planes", type=int, default=None, metavar="P",
                        help="number of bitplanes to keep in the bundle, 1..B, most "
                        "significant first (default: all B)")
    parser.add_argument("--max-error", type=float, default=0.005, metavar="FRACTION",
                        help="error budget: largest relative L2 error of the model outputs "
                        "on the sample inputs, as a fraction (default: 0.005 = 0.5%%)")
    parser.add_argument("--no-search", action="store_true",
                        help="use --bits and --group-size as given, even above the budget")
    parser.add_argument("--inputs", nargs="+", default=None, metavar="NPZ",
                        help="sample input files (.npz, one array per model input, one file "
                        "per sample); default: 4 random samples from the input shapes")
    parser.add_argument("--min-elements", type=int, default=1024, metavar="N",
                        help="tensors with fewer values stay float (default: 1024 values)")
    parser.add_argument("--report", action="store_true",
                        help="also write BUNDLE_DIR/report/: sizes, per-tensor and per-plane "
                        "errors (report.md, report.json) and output_error.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace BUNDLE_DIR if it exists")
    parser.add_argument("--trainable", nargs="+", default=None, metavar="TENSOR",
                        help="also write the training graphs (backbone.onnx, train_step.onnx) "
                        "for these packed tensors, or `auto` for the last weight-bearing layers")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_pack(args) -> int:
    from rbe_edge.pack import pack_model

    bundle = pack_model(
        args.model, args.output, args.bits, group_size=args.group_size, planes=args.planes,
        max_error=args.max_error, search=not args.no_search, samples=args.inputs,
        min_elements=args.min_elements, overwrite=args.overwrite, report=args.report,
        progress=not args.quiet,
        trainable="auto" if args.trainable == ["auto"] else args.trainable,
    )
    manifest = bundle.manifest
    count = len(manifest["tensors"])
    print(f"packed {count} tensor{'s' if count != 1 else ''} into {bundle.path}: "
          f"{manifest['bits']} bits, group size {manifest['group_size'] or 'per row'}, "
          f"{manifest['planes']} planes, output error {manifest['output_error']:.3g} "
          f"(budget {manifest['error_budget']:.3g})")
    if args.report:
        print(f"report: {bundle.path / 'report' / 'report.md'}")
    bundle.close()
    return 0


def run_inspect(args) -> int:
    from rbe_edge.bundle import Bundle

    with Bundle.open(args.bundle) as bundle:
        manifest = bundle.manifest
        if args.json:
            print(json.dumps(manifest, indent=2))
            return 0
        print(f"bundle {bundle.path}: {manifest['created_by']}, format version "
              f"{manifest['version']}, {manifest['bits']} bits, "
              f"{bundle.planes_available} planes in model.rbe")
        print(f"{'tensor':40} {'shape':>18} {'layout':>6} {'bits':>4} {'group':>6} {'dtype':>8}")
        for tensor in manifest["tensors"]:
            shape = "x".join(str(d) for d in tensor["shape"])
            print(f"{tensor['name'][:40]:40} {shape:>18} {tensor['layout']:>6} "
                  f"{tensor['bits']:>4} {tensor['group_size']:>6} {tensor['dtype']:>8}")
    return 0


def run_verify(args) -> int:
    from rbe_edge.bundle import Bundle

    with Bundle.open(args.bundle) as bundle:
        summary = bundle.verify()
    others = f", {len(summary['other files'])} training files" if summary["other files"] else ""
    print(f"{args.bundle}: OK ({summary['tensors']} tensors, {summary['planes']} of "
          f"{summary['bits']} planes{others}, every checksum matches)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rbe_edge",
                                     description="rbe_edge bundles: pack, inspect, verify, adapt.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    pack = commands.add_parser("pack", help="pack an ONNX model into a bundle",
                               description=PACK_DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pack_arguments(pack)
    pack.set_defaults(run=run_pack)

    inspect = commands.add_parser("inspect", help="list a bundle's tensors and settings")
    inspect.add_argument("bundle", help="bundle folder")
    inspect.add_argument("--json", action="store_true", help="print manifest.json")
    inspect.set_defaults(run=run_inspect)

    verify = commands.add_parser("verify", help="check every checksum of a bundle")
    verify.add_argument("bundle", help="bundle folder")
    verify.set_defaults(run=run_verify)

    from rbe_edge.adapt.cli import ADAPT_DESCRIPTION, add_adapt_arguments, run_adapt
    adapt = commands.add_parser("adapt", help="adapt a bundle to labelled examples",
                                description=ADAPT_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_adapt_arguments(adapt)
    adapt.set_defaults(run=run_adapt)
    return parser


def main(argv: Optional[List[str]] = None, parser: Optional[argparse.ArgumentParser] = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (RbeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
