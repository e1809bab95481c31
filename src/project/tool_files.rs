//! What a batch carries for annotation tools, so an annotator can start in the tool they
//! use: a COCO file listing the images and the four region categories (CVAT, Labelbox,
//! FiftyOne and most others import it), and a Label Studio project (labeling config with
//! the regions as polygons and brush strokes, and a tasks file). What the tools export
//! comes back through `sula import` (see [`super::annotations`]).

use super::annotations::regions::REGION_NAMES;

/// The COCO file of a batch, beside `images/`.
pub const COCO_FILE: &str = "coco.json";
/// Label Studio's labeling config, in the batch's `label-studio/` folder.
pub const LABEL_STUDIO_CONFIG: &str = "label-studio/config.xml";
/// Label Studio's tasks, one per image, in the batch's `label-studio/` folder.
pub const LABEL_STUDIO_TASKS: &str = "label-studio/tasks.json";

/// Region colours in the tools, as in sula's own previews (calcium a light blue, since
/// white on a bright ultrasound image cannot be seen).
const COLOURS: [&str; 4] = ["#c8786e", "#f0d23c", "#9ad0ff", "#202020"];

/// The batch's COCO file: `frames` as (stem, width, height), the four categories, and no
/// annotations yet.
pub fn coco(frames: &[(String, usize, usize)], batch_id: &str) -> String {
    let images: Vec<serde_json::Value> = frames
        .iter()
        .enumerate()
        .map(|(k, (stem, width, height))| {
            serde_json::json!({
                "id": k + 1,
                "file_name": format!("images/{stem}.png"),
                "width": width,
                "height": height,
            })
        })
        .collect();
    let categories: Vec<serde_json::Value> = REGION_NAMES
        .iter()
        .enumerate()
        .map(
            |(k, name)| serde_json::json!({ "id": k + 1, "name": name, "supercategory": "tissue" }),
        )
        .collect();
    let file = serde_json::json!({
        "info": {
            "description": format!("sula batch {batch_id}: vessel is everything inside the media-adventitia border; lipid, calcium and lumen are painted over it in that order"),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "images": images,
        "categories": categories,
        "annotations": [],
    });
    serde_json::to_string_pretty(&file).expect("JSON values serialise")
}

/// Label Studio's labeling config: the image, and the four regions as polygons and as
/// brush strokes.
pub fn label_studio_config() -> String {
    let labels: String = REGION_NAMES
        .iter()
        .zip(COLOURS)
        .map(|(name, colour)| format!("    <Label value=\"{name}\" background=\"{colour}\"/>\n"))
        .collect();
    format!(
        "<View>\n  <Image name=\"image\" value=\"$image\" zoom=\"true\"/>\n  \
         <PolygonLabels name=\"polygon\" toName=\"image\" strokeWidth=\"2\" opacity=\"0.4\">\n{labels}  </PolygonLabels>\n  \
         <BrushLabels name=\"brush\" toName=\"image\" opacity=\"0.4\">\n{labels}  </BrushLabels>\n</View>\n"
    )
}

/// Label Studio's tasks: each image as a local-files URL relative to the batch folder
/// (Label Studio started with the batch as its local-files document root), and the frame
/// id as `sula_id`, which the export keeps, so import never depends on file names.
pub fn label_studio_tasks(stems: &[String]) -> String {
    let tasks: Vec<serde_json::Value> = stems
        .iter()
        .map(|stem| {
            serde_json::json!({
                "data": {
                    "image": format!("/data/local-files/?d=images/{stem}.png"),
                    "sula_id": stem,
                }
            })
        })
        .collect();
    serde_json::to_string_pretty(&tasks).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_files_name_every_frame_and_the_four_regions() {
        let frames = vec![("f0003".to_string(), 40, 30), ("f0009".to_string(), 40, 30)];
        let coco: serde_json::Value = serde_json::from_str(&coco(&frames, "b1")).unwrap();
        assert_eq!(coco["images"][1]["file_name"], "images/f0009.png");
        assert_eq!(coco["images"][0]["height"], 30);
        let names: Vec<&str> = coco["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, REGION_NAMES);
        let config = label_studio_config();
        assert_eq!(config.matches("<Label value=\"lumen\"").count(), 2);
        assert!(config.contains("<PolygonLabels") && config.contains("<BrushLabels"));
        let tasks: serde_json::Value =
            serde_json::from_str(&label_studio_tasks(&["f0003".to_string()])).unwrap();
        assert_eq!(tasks[0]["data"]["sula_id"], "f0003");
        assert_eq!(
            tasks[0]["data"]["image"],
            "/data/local-files/?d=images/f0003.png"
        );
    }
}
